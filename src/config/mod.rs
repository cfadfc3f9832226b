//! One typed configuration, loaded once: defaults, then a TOML file (`--config`), then `.env`,
//! then `TESSERA_*` variables, then flags — each later source overriding the earlier.
//!
//! Every setting is declared once, as a field of [`Config`] (or [`MailConfig`]): its flag, its
//! variable, its type, its parser and its default sit together, and clap reads flags and
//! variables into it (`.env` is loaded into the environment first, without overriding it). A
//! TOML file supplies new defaults for the settings it names, so it sits under variables and
//! flags and goes through the same parsers; a key that names no setting is refused.

mod values;

use crate::domain::second_factor::MfaPolicy;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgMatches, Command, FromArgMatches as _};
use secrecy::SecretString;

pub use values::{Environment, LogFormat, Origins, Proxies, RouteOverrides, SecretUrl};

/// The validated configuration.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Database URL: sqlite://FILE?mode=rwc, postgres://… or mysql://…
    #[arg(long, env = "TESSERA_DATABASE_URL", global = true, hide_env_values = true,
        default_value = "sqlite://tessera.db?mode=rwc", value_parser = values::database_url)]
    pub database_url: SecretUrl,
    /// Most connections in the pool
    #[arg(long, env = "TESSERA_DATABASE_MAX_CONNECTIONS", global = true, hide_env_values = true, default_value = "10",
        value_parser = values::bounded::<u32, 1, 1000>)]
    pub database_max_connections: u32,
    /// Address to listen on
    #[arg(long, env = "TESSERA_LISTEN", global = true, hide_env_values = true, default_value = "127.0.0.1:8080", value_parser = values::address)]
    pub listen: SocketAddr,
    /// The URL clients reach the service at; the tokens' issuer and the base of mailed links [default: http://LISTEN]
    #[arg(long, env = "TESSERA_PUBLIC_URL", global = true, hide_env_values = true, value_parser = values::base_url)]
    pub public_url: Option<String>,
    /// The `aud` claim of access tokens
    #[arg(long, env = "TESSERA_TOKEN_AUDIENCE", global = true, hide_env_values = true, default_value = "tessera", value_parser = values::non_empty)]
    pub token_audience: String,
    /// Lifetime of access tokens, e.g. 15m
    #[arg(long, env = "TESSERA_ACCESS_TOKEN_TTL", global = true, hide_env_values = true, default_value = "15m", value_parser = values::duration)]
    pub access_token_ttl: Duration,
    /// Lifetime of refresh tokens; each refresh extends the session by this much
    #[arg(long, env = "TESSERA_REFRESH_TOKEN_TTL", global = true, hide_env_values = true, default_value = "30d", value_parser = values::duration)]
    pub refresh_token_ttl: Duration,
    /// Absolute maximum age of a session, however often refreshed
    #[arg(long, env = "TESSERA_SESSION_MAX_AGE", global = true, hide_env_values = true, default_value = "90d", value_parser = values::duration)]
    pub session_max_age: Duration,
    /// How long a just-rotated refresh token still returns the same successor pair; 0s turns the grace off
    #[arg(long, env = "TESSERA_REFRESH_REUSE_GRACE", global = true, hide_env_values = true, default_value = "10s",
        value_parser = values::duration_or_zero)]
    pub refresh_reuse_grace: Duration,
    /// How long a node may trust a session it has read; a revocation on another node is seen within this. 0s reads it on every request
    #[arg(long, env = "TESSERA_SESSION_CACHE_TTL", global = true, hide_env_values = true, default_value = "2s",
        value_parser = values::session_cache_ttl)]
    pub session_cache_ttl: Duration,
    /// How long audit events are kept before the sweeper deletes them
    #[arg(long, env = "TESSERA_AUDIT_RETENTION", global = true, hide_env_values = true, default_value = "365d", value_parser = values::duration)]
    pub audit_retention: Duration,
    /// Sign with HS256 and this shared secret (at least 32 bytes) instead of EdDSA keys; no JWKS is then published
    #[arg(long, env = "TESSERA_JWT_SECRET", global = true, hide_env_values = true, value_parser = values::jwt_secret)]
    pub jwt_secret: Option<SecretString>,
    /// Log format: text or json
    #[arg(long, env = "TESSERA_LOG_FORMAT", global = true, hide_env_values = true, default_value = "text", value_parser = values::log_format)]
    pub log_format: LogFormat,
    /// Password hashes computed at once; each holds 19 MiB while it runs (the default is the number of cores)
    #[arg(long, env = "TESSERA_HASH_CONCURRENCY", global = true, hide_env_values = true, default_value_t = values::cores(),
        value_parser = values::bounded::<usize, 1, 256>)]
    pub hash_concurrency: usize,
    /// Requests per minute per client IP on sign-in, registration and recovery routes; 0 turns it off
    #[arg(long, env = "TESSERA_RATE_LIMIT", global = true, hide_env_values = true, default_value = "30",
        value_parser = values::bounded::<u32, 0, 1_000_000>)]
    pub rate_limit: u32,
    /// Per-route overrides of TESSERA_RATE_LIMIT, e.g. login=10,refresh=120; routes: register, login, refresh, forgot, resend, verify, reset
    #[arg(long, env = "TESSERA_RATE_LIMITS", global = true, hide_env_values = true, default_value = "",
        hide_default_value = true, value_parser = values::route_limits)]
    pub rate_limits: RouteOverrides,
    /// Redis for the rate limits' counters (redis://host:6379/0); unset, they live in the database
    #[arg(long, env = "TESSERA_REDIS_URL", global = true, hide_env_values = true, value_parser = values::redis_url)]
    pub redis_url: Option<SecretUrl>,
    /// Consecutive wrong passwords that lock an account (1 min, doubling per further failure, at most 1 h); 0 turns lockout off
    #[arg(long, env = "TESSERA_LOCKOUT_THRESHOLD", global = true, hide_env_values = true, default_value = "5",
        value_parser = values::bounded::<u32, 0, 1000>)]
    pub lockout_threshold: u32,
    /// The WebAuthn relying party id passkeys are bound to: a domain (e.g. example.com) [default: TESSERA_PUBLIC_URL's host; localhost when that is an IP address]
    #[arg(long, env = "TESSERA_WEBAUTHN_RP_ID", global = true, hide_env_values = true, value_parser = values::non_empty)]
    pub webauthn_rp_id: Option<String>,
    /// Origins passkeys may be used from, comma-separated, each on the relying party id's domain [default: TESSERA_PUBLIC_URL's origin]
    #[arg(long, env = "TESSERA_WEBAUTHN_ORIGINS", global = true, hide_env_values = true, default_value = "",
        hide_default_value = true, value_parser = values::origins)]
    pub webauthn_origins: Origins,
    /// Browser applications on other origins allowed to call the API: exact origins, comma-separated (e.g. https://app.example); none by default
    #[arg(long, env = "TESSERA_CORS_ORIGINS", global = true, hide_env_values = true, default_value = "",
        hide_default_value = true, value_parser = values::origins)]
    pub cors_origins: Origins,
    /// Proxies whose X-Forwarded-For names the client: CIDR networks or addresses, comma-separated; none by default
    #[arg(long, env = "TESSERA_TRUSTED_PROXIES", global = true, hide_env_values = true, default_value = "",
        hide_default_value = true, value_parser = values::proxies)]
    pub trusted_proxies: Proxies,
    /// Longest a request may take, body included, before it is answered 503
    #[arg(long, env = "TESSERA_REQUEST_TIMEOUT", global = true, hide_env_values = true, default_value = "30s",
        value_parser = values::duration)]
    pub request_timeout: Duration,
    /// Longest a client may take to send a request's headers, and a kept-alive connection may wait idle for the next
    #[arg(long, env = "TESSERA_HEADER_TIMEOUT", global = true, hide_env_values = true, default_value = "10s",
        value_parser = values::duration)]
    pub header_timeout: Duration,
    /// Connections served at once; more wait to be accepted
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS", global = true, hide_env_values = true, default_value = "4096",
        value_parser = values::bounded::<usize, 1, 1_000_000>)]
    pub max_connections: usize,
    /// Live sessions one account may have; a new sign-in beyond it ends the oldest
    #[arg(long, env = "TESSERA_MAX_SESSIONS_PER_USER", global = true, hide_env_values = true, default_value = "100",
        value_parser = values::bounded::<u32, 1, 100_000>)]
    pub max_sessions_per_user: u32,
    /// The operator-held key that seals signing keys and server secrets at rest: 32 bytes in base64 (`tessera keys new-master-key` makes one). Unset, they are stored in clear (development only)
    #[arg(long, env = "TESSERA_MASTER_KEY", global = true, hide_env_values = true, value_parser = values::master_key)]
    master_key: Option<SecretString>,
    /// A file holding the master key, instead of TESSERA_MASTER_KEY
    #[arg(long, env = "TESSERA_MASTER_KEY_FILE", global = true, hide_env_values = true,
        value_parser = values::master_key_file)]
    master_key_file: Option<SecretString>,
    /// Accounts that must add a second factor before they can do anything else: none, admin (administrators and owners) or all
    #[arg(long, env = "TESSERA_REQUIRE_MFA", global = true, hide_env_values = true, default_value = "none",
        value_parser = values::require_mfa)]
    pub require_mfa: MfaPolicy,
    /// development or production; production refuses what is only fit for development (mail written to the log)
    #[arg(long = "env", id = "env", env = "TESSERA_ENV", global = true, hide_env_values = true,
        default_value = "development", value_parser = values::environment)]
    pub environment: Environment,
    #[command(flatten)]
    pub mail: MailConfig,
}

/// How mail is sent and what it links to.
#[derive(Debug, Clone, clap::Args)]
pub struct MailConfig {
    /// SMTP server for mail: smtp://user:pass@host:587?tls=required, smtps://…, or smtp://host:25 for a local relay. Unset: mails are written to the log
    #[arg(long, env = "TESSERA_SMTP_URL", global = true, hide_env_values = true, value_parser = values::smtp_url)]
    pub smtp_url: Option<SecretUrl>,
    /// Sender of every mail
    #[arg(id = "mail_from", long = "mail-from", env = "TESSERA_MAIL_FROM", global = true, hide_env_values = true,
        default_value = "tessera <no-reply@localhost>", value_parser = values::mailbox)]
    pub from: lettre::message::Mailbox,
    /// The product named in mails and pages
    #[arg(long, env = "TESSERA_PRODUCT_NAME", global = true, hide_env_values = true, default_value = "tessera", value_parser = values::non_empty)]
    pub product_name: String,
    /// Your application's base URL: mailed links then go to its /verify-email and /reset-password pages instead of this service's
    #[arg(long, env = "TESSERA_APP_URL", global = true, hide_env_values = true, value_parser = values::base_url)]
    pub app_url: Option<String>,
    /// Lifetime of e-mail verification links
    #[arg(long, env = "TESSERA_VERIFY_TOKEN_TTL", global = true, hide_env_values = true, default_value = "24h", value_parser = values::duration)]
    pub verify_token_ttl: Duration,
    /// Lifetime of password reset links
    #[arg(long, env = "TESSERA_RESET_TOKEN_TTL", global = true, hide_env_values = true, default_value = "30m", value_parser = values::duration)]
    pub reset_token_ttl: Duration,
    /// Verification and reset mails one address may get per hour (a burst of that many, then one every 60/N minutes); beyond, they are dropped unsent. 0 is no limit
    #[arg(id = "mail_per_address_per_hour", long = "mail-per-address-per-hour", env = "TESSERA_MAIL_PER_ADDRESS_PER_HOUR",
        global = true, hide_env_values = true, default_value = "5", value_parser = values::bounded::<u32, 0, 10_000>)]
    pub per_address_per_hour: u32,
    /// Refuse sign-in until the e-mail address is verified, and require one at registration
    #[arg(id = "require_email_verification", long = "require-email-verification",
        env = "TESSERA_REQUIRE_EMAIL_VERIFICATION", global = true, hide_env_values = true, default_value = "false",
        action = clap::ArgAction::Set, value_parser = values::boolean)]
    pub require_verification: bool,
    /// Wait before the first retry of a failed mail; each later one waits twice as long, at most 1h
    #[arg(id = "mail_retry_delay", long = "mail-retry-delay", env = "TESSERA_MAIL_RETRY_DELAY", global = true, hide_env_values = true,
        default_value = "10s", value_parser = values::retry_delay)]
    pub retry_delay: Duration,
    /// How long a mail may keep failing, from when it was queued, before it is set aside as a dead letter (tessera mail failed)
    #[arg(id = "mail_give_up_after", long = "mail-give-up-after", env = "TESSERA_MAIL_GIVE_UP_AFTER", global = true,
        hide_env_values = true, default_value = "24h", value_parser = values::duration)]
    pub give_up_after: Duration,
}

/// The TOML file of settings, itself a flag and a variable (read before everything else).
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigFile {
    /// A TOML file of settings; keys are the variable names without `TESSERA_`, in lower case.
    #[arg(long, env = "TESSERA_CONFIG", global = true, hide_env_values = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// A setting that could not be used: names the variable and says what was wrong.
#[derive(Debug, thiserror::Error)]
#[error("invalid {setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Self { setting: setting.into(), message: message.into() }
    }
}

impl Config {
    /// The configuration from these command-line words (the first is the program name) and the
    /// environment, over the TOML file they name.
    pub fn parse_from<I, T>(words: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = matches(settings_command(), words)?;
        let config = Self::from_arg_matches(&matches).map_err(|e| ConfigError::new("settings", e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// The master key, from the variable or the file.
    pub fn master_key(&self) -> Option<&SecretString> {
        self.master_key.as_ref().or(self.master_key_file.as_ref())
    }

    /// Sets the master key (tests and tools that build a configuration in code).
    pub fn set_master_key(&mut self, key: Option<SecretString>) {
        self.master_key = key;
        self.master_key_file = None;
    }

    /// The rules between settings, which no single parser can see.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.master_key.is_some() && self.master_key_file.is_some() {
            return Err(ConfigError::new("TESSERA_MASTER_KEY_FILE", "set it or TESSERA_MASTER_KEY, not both"));
        }

        if self.refresh_token_ttl < self.access_token_ttl {
            return Err(ConfigError::new(
                "TESSERA_REFRESH_TOKEN_TTL",
                "must not be shorter than TESSERA_ACCESS_TOKEN_TTL",
            ));
        }
        if self.session_max_age < self.refresh_token_ttl {
            return Err(ConfigError::new(
                "TESSERA_SESSION_MAX_AGE",
                "must not be shorter than TESSERA_REFRESH_TOKEN_TTL",
            ));
        }
        Ok(())
    }
}

/// Parses `words` with `command`, whose arguments include [`Config`]'s and [`ConfigFile`]'s:
/// first to find the TOML file, then again with the file's values as the settings' defaults.
/// `--help` and `--version` print and exit; a refused value is a [`ConfigError`] naming its
/// variable; any other misuse prints clap's own message and exits with code 2.
pub fn matches<I, T>(command: Command, words: I) -> Result<ArgMatches, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let words: Vec<OsString> = words.into_iter().map(Into::into).collect();
    let first = command.clone().ignore_errors(true).try_get_matches_from(&words).unwrap_or_default();
    let command = match first.try_get_one::<PathBuf>("config").ok().flatten() {
        Some(path) => with_file_defaults(command, path)?,
        None => command,
    };
    match command.clone().try_get_matches_from(&words) {
        Ok(matches) => Ok(matches),
        Err(error) if matches!(error.kind(), ErrorKind::ValueValidation | ErrorKind::InvalidValue) => {
            Err(refusal(&command, &error))
        }
        Err(error) => error.exit(),
    }
}

/// `command` with each setting the TOML file at `path` names defaulting to the file's value.
fn with_file_defaults(mut command: Command, path: &Path) -> Result<Command, ConfigError> {
    let setting = format!("--config {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::new(&setting, e.to_string()))?;
    let table: toml::Table =
        text.parse().map_err(|e: toml::de::Error| ConfigError::new(&setting, e.message().to_owned()))?;
    for (key, value) in table {
        if key == "config" || !command.get_arguments().any(|arg| arg.get_id() == key.as_str()) {
            return Err(ConfigError::new(&setting, format!("unknown key {key:?}")));
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(ConfigError::new(
                    &setting,
                    format!("{key}: expected a string, number or boolean, got {}", other.type_str()),
                ));
            }
        };
        // Hidden from `--help`: a file may hold secrets (the JWT secret, URLs with passwords).
        command = command.mut_arg(key, |arg| arg.default_value(text).hide_default_value(true));
    }
    Ok(command)
}

/// A refused value as one line naming the variable, with the parser's reason.
fn refusal(command: &Command, error: &clap::Error) -> ConfigError {
    let flag = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(flag)) => flag.clone(),
        _ => String::new(),
    };
    let long = flag.trim_start_matches('-').split([' ', '=']).next().unwrap_or_default();
    let arg = command.get_arguments().find(|arg| arg.get_long() == Some(long));
    let setting = arg.and_then(|a| a.get_env()).map_or(flag.clone(), |env| env.to_string_lossy().into_owned());
    let reason = std::error::Error::source(error).map_or_else(|| "not a valid value".to_owned(), ToString::to_string);
    ConfigError::new(setting, reason)
}

/// A command of the settings alone.
fn settings_command() -> Command {
    <Config as clap::Args>::augment_args(<ConfigFile as clap::Args>::augment_args(Command::new("tessera")))
}

/// Every `TESSERA_*` variable a setting reads.
pub fn variables() -> Vec<String> {
    settings_command()
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .collect()
}

/// Variables one command reads rather than the service (`users import`'s Firebase key, which is
/// better kept out of the command line).
const COMMAND_VARIABLES: [&str; 1] = ["TESSERA_FIREBASE_SIGNER_KEY"];

/// `TESSERA_*` variables that name no setting: likely typos, worth a warning.
pub fn unknown_variables() -> Vec<String> {
    let mut known = variables();
    known.extend(COMMAND_VARIABLES.map(str::to_owned));
    std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with("TESSERA_") && !name.starts_with("TESSERA_TEST_"))
        .filter(|name| !known.contains(name))
        .collect()
}

#[cfg(test)]
mod tests;
