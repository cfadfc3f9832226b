//! One typed configuration, loaded once: defaults, then a TOML file (`--config`), then `.env`,
//! then `TESSERA_*` variables, then flags — each later source overriding the earlier.
//!
//! clap reads the flags and variables (`.env` is loaded into the environment first, without
//! overriding it), so every setting is one `Option<String>` here and is parsed in one place,
//! where a bad value can be reported with the variable's name.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// Declares every setting once: the clap flag with its `TESSERA_*` variable, and the key list
/// used for TOML files and for spotting misspelt variables.
macro_rules! settings {
    ($( $(#[doc = $doc:literal])* $field:ident => $env:literal ),* $(,)?) => {
        /// Every setting as given on the command line or in the environment.
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct SettingsArgs {
            /// A TOML file of settings; keys are the variable names without `TESSERA_`, in lower case.
            #[arg(long, env = "TESSERA_CONFIG", global = true, value_name = "FILE")]
            pub config: Option<PathBuf>,
            $(
                $(#[doc = $doc])*
                #[arg(long, env = $env, global = true, hide_env_values = true)]
                pub $field: Option<String>,
            )*
        }

        impl SettingsArgs {
            /// `(toml key, variable)` for every setting.
            pub const KEYS: &[(&str, &str)] = &[$((stringify!($field), $env)),*];

            fn given(&self, key: &str) -> Option<&str> {
                match key {
                    $(stringify!($field) => self.$field.as_deref(),)*
                    _ => None,
                }
            }
        }
    };
}

settings! {
    /// Database URL: sqlite://FILE?mode=rwc, postgres://… or mysql://… [default: sqlite://tessera.db?mode=rwc]
    database_url => "TESSERA_DATABASE_URL",
    /// Most connections in the pool [default: 10]
    database_max_connections => "TESSERA_DATABASE_MAX_CONNECTIONS",
    /// Address to listen on [default: 127.0.0.1:8080]
    listen => "TESSERA_LISTEN",
    /// The URL clients reach the service at; the tokens' issuer and the base of mailed links [default: http://LISTEN]
    public_url => "TESSERA_PUBLIC_URL",
    /// The `aud` claim of access tokens [default: tessera]
    token_audience => "TESSERA_TOKEN_AUDIENCE",
    /// Lifetime of access tokens, e.g. 15m [default: 15m]
    access_token_ttl => "TESSERA_ACCESS_TOKEN_TTL",
    /// Lifetime of refresh tokens; each refresh extends the session by this much [default: 30d]
    refresh_token_ttl => "TESSERA_REFRESH_TOKEN_TTL",
    /// Absolute maximum age of a session, however often refreshed [default: 90d]
    session_max_age => "TESSERA_SESSION_MAX_AGE",
    /// How long a just-rotated refresh token still returns the same successor pair; 0s turns the grace off [default: 10s]
    refresh_reuse_grace => "TESSERA_REFRESH_REUSE_GRACE",
    /// How long a node may trust a session it has read; a revocation on another node is seen within this. 0s reads it on every request [default: 2s]
    session_cache_ttl => "TESSERA_SESSION_CACHE_TTL",
    /// How long audit events are kept before the sweeper deletes them [default: 365d]
    audit_retention => "TESSERA_AUDIT_RETENTION",
    /// Sign with HS256 and this shared secret (at least 32 bytes) instead of EdDSA keys; no JWKS is then published
    jwt_secret => "TESSERA_JWT_SECRET",
    /// Log format: text or json [default: text]
    log_format => "TESSERA_LOG_FORMAT",
    /// Password hashes computed at once; each holds 19 MiB while it runs [default: number of cores]
    hash_concurrency => "TESSERA_HASH_CONCURRENCY",
    /// Requests per minute per client IP on sign-in, registration and recovery routes; 0 turns it off [default: 30]
    rate_limit => "TESSERA_RATE_LIMIT",
    /// SMTP server for mail: smtp://user:pass@host:587?tls=required, smtps://…, or smtp://host:25 for a local relay. Unset: mails are written to the log
    smtp_url => "TESSERA_SMTP_URL",
    /// Sender of every mail [default: tessera <no-reply@localhost>]
    mail_from => "TESSERA_MAIL_FROM",
    /// The product named in mails and pages [default: tessera]
    product_name => "TESSERA_PRODUCT_NAME",
    /// Your application's base URL: mailed links then go to its /verify-email and /reset-password pages instead of this service's
    app_url => "TESSERA_APP_URL",
    /// Lifetime of e-mail verification links [default: 24h]
    verify_token_ttl => "TESSERA_VERIFY_TOKEN_TTL",
    /// Lifetime of password reset links [default: 30m]
    reset_token_ttl => "TESSERA_RESET_TOKEN_TTL",
    /// Refuse sign-in until the e-mail address is verified, and require one at registration [default: false]
    require_email_verification => "TESSERA_REQUIRE_EMAIL_VERIFICATION",
    /// Wait before the first retry of a failed mail; each later one waits twice as long, at most 1h [default: 10s]
    mail_retry_delay => "TESSERA_MAIL_RETRY_DELAY",
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A database or SMTP URL whose password never appears in `Debug` output or logs.
#[derive(Clone)]
pub struct SecretUrl(SecretString);

impl SecretUrl {
    pub fn new(url: &str) -> Self {
        Self(SecretString::from(url))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The URL with any password replaced by `***`.
    pub fn masked(&self) -> String {
        let url = self.expose();
        let Some((scheme, rest)) = url.split_once("://") else {
            return url.to_owned();
        };
        let authority_end = rest.find('/').unwrap_or(rest.len());
        match rest[..authority_end].rfind('@') {
            Some(at) => match rest[..at].split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
                None => url.to_owned(),
            },
            None => url.to_owned(),
        }
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.masked())
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: SecretUrl,
    pub database_max_connections: u32,
    pub listen: SocketAddr,
    /// `None` means "http:// plus the address actually bound".
    pub public_url: Option<String>,
    pub token_audience: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub session_max_age: Duration,
    pub refresh_reuse_grace: Duration,
    pub session_cache_ttl: Duration,
    pub audit_retention: Duration,
    pub jwt_secret: Option<SecretString>,
    pub log_format: LogFormat,
    pub hash_concurrency: usize,
    pub rate_limit: u32,
    pub mail: MailConfig,
}

/// How mail is sent and what it links to.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `None`: mails go to the log.
    pub smtp_url: Option<SecretUrl>,
    pub from: lettre::message::Mailbox,
    pub product_name: String,
    pub app_url: Option<String>,
    pub verify_token_ttl: Duration,
    pub reset_token_ttl: Duration,
    pub require_verification: bool,
    pub retry_delay: Duration,
}

/// A setting that could not be used: names the variable and says what was wrong.
#[derive(Debug, thiserror::Error)]
#[error("invalid {setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

impl ConfigError {
    fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Self { setting: setting.into(), message: message.into() }
    }
}

impl Config {
    /// Builds the configuration from flags and variables, over the TOML file if one is named.
    pub fn load(args: &SettingsArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_toml(path)?,
            None => BTreeMap::new(),
        };
        let sources = Sources { args, file };
        let access_token_ttl = sources.parse("access_token_ttl", "15m", duration)?;
        let refresh_token_ttl = sources.parse("refresh_token_ttl", "30d", duration)?;
        let session_max_age = sources.parse("session_max_age", "90d", duration)?;
        if refresh_token_ttl < access_token_ttl {
            return Err(ConfigError::new(
                "TESSERA_REFRESH_TOKEN_TTL",
                "must not be shorter than TESSERA_ACCESS_TOKEN_TTL",
            ));
        }
        if session_max_age < refresh_token_ttl {
            return Err(ConfigError::new(
                "TESSERA_SESSION_MAX_AGE",
                "must not be shorter than TESSERA_REFRESH_TOKEN_TTL",
            ));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            database_url: sources.parse("database_url", "sqlite://tessera.db?mode=rwc", database_url)?,
            database_max_connections: sources.parse("database_max_connections", "10", |v| bounded(v, 1, 1000))?,
            listen: sources.parse("listen", "127.0.0.1:8080", |v| {
                v.parse().map_err(|_| "expected an address like 127.0.0.1:8080".to_owned())
            })?,
            public_url: sources
                .value("public_url")
                .map(|v| public_url(&v))
                .transpose()
                .map_err(|m| sources.error("public_url", m))?,
            token_audience: sources.parse("token_audience", "tessera", |v| non_empty(v).map(str::to_owned))?,
            access_token_ttl,
            refresh_token_ttl,
            session_max_age,
            refresh_reuse_grace: sources.parse("refresh_reuse_grace", "10s", |v| {
                humantime::parse_duration(v).map_err(|_| "expected a duration like 10s, or 0s".to_owned())
            })?,
            session_cache_ttl: sources.parse("session_cache_ttl", "2s", |v| match humantime::parse_duration(v) {
                Ok(d) if d <= Duration::from_secs(5) => Ok(d),
                _ => Err("expected a duration from 0s to 5s".to_owned()),
            })?,
            audit_retention: sources.parse("audit_retention", "365d", duration)?,
            jwt_secret: sources
                .value("jwt_secret")
                .map(|v| jwt_secret(&v))
                .transpose()
                .map_err(|m| sources.error("jwt_secret", m))?,
            log_format: sources.parse("log_format", "text", |v| match v {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err("expected text or json".to_owned()),
            })?,
            hash_concurrency: sources.parse("hash_concurrency", &cores.to_string(), |v| bounded(v, 1, 256))?,
            rate_limit: sources.parse("rate_limit", "30", |v| bounded(v, 0, 1_000_000))?,
            mail: MailConfig {
                smtp_url: sources
                    .value("smtp_url")
                    .map(|v| smtp_url(&v))
                    .transpose()
                    .map_err(|m| sources.error("smtp_url", m))?,
                from: sources.parse("mail_from", "tessera <no-reply@localhost>", |v| {
                    v.parse().map_err(|_| "expected an address like Example <no-reply@example.com>".to_owned())
                })?,
                product_name: sources.parse("product_name", "tessera", |v| non_empty(v).map(str::to_owned))?,
                app_url: sources
                    .value("app_url")
                    .map(|v| public_url(&v))
                    .transpose()
                    .map_err(|m| sources.error("app_url", m))?,
                verify_token_ttl: sources.parse("verify_token_ttl", "24h", duration)?,
                reset_token_ttl: sources.parse("reset_token_ttl", "30m", duration)?,
                require_verification: sources.parse("require_email_verification", "false", boolean)?,
                retry_delay: sources.parse("mail_retry_delay", "10s", |v| match humantime::parse_duration(v) {
                    Ok(d) if d >= Duration::from_millis(10) && d <= Duration::from_secs(3600) => Ok(d),
                    _ => Err("expected a duration from 10ms to 1h".to_owned()),
                })?,
            },
        })
    }
}

/// `TESSERA_*` variables that name no setting: likely typos, worth a warning.
pub fn unknown_variables() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with("TESSERA_") && !name.starts_with("TESSERA_TEST_"))
        .filter(|name| name != "TESSERA_CONFIG" && !SettingsArgs::KEYS.iter().any(|(_, env)| env == name))
        .collect()
}

struct Sources<'a> {
    args: &'a SettingsArgs,
    file: BTreeMap<String, String>,
}

impl Sources<'_> {
    fn value(&self, key: &str) -> Option<String> {
        self.args.given(key).map(str::to_owned).or_else(|| self.file.get(key).cloned())
    }

    fn error(&self, key: &str, message: String) -> ConfigError {
        let env = SettingsArgs::KEYS.iter().find(|(k, _)| *k == key).map_or(key, |(_, env)| env);
        ConfigError::new(env, message)
    }

    fn parse<T>(&self, key: &str, default: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<T, ConfigError> {
        let value = self.value(key).unwrap_or_else(|| default.to_owned());
        parse(value.trim()).map_err(|message| self.error(key, format!("{message} (got {})", shown(key, &value))))
    }
}

/// How a refused value is echoed: database URLs masked, everything else as given.
fn shown(key: &str, value: &str) -> String {
    if key == "database_url" || key == "smtp_url" {
        format!("{:?}", SecretUrl::new(value))
    } else {
        format!("{value:?}")
    }
}

fn read_toml(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let setting = format!("--config {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::new(&setting, e.to_string()))?;
    let table: toml::Table =
        text.parse().map_err(|e: toml::de::Error| ConfigError::new(&setting, e.message().to_owned()))?;
    table
        .into_iter()
        .map(|(key, value)| {
            if !SettingsArgs::KEYS.iter().any(|(k, _)| *k == key) {
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
            Ok((key, text))
        })
        .collect()
}

fn duration(value: &str) -> Result<Duration, String> {
    let parsed = humantime::parse_duration(value).map_err(|_| "expected a duration like 15m, 12h or 30d".to_owned())?;
    if parsed < Duration::from_secs(1) {
        return Err("must be at least 1s".into());
    }
    Ok(parsed)
}

fn boolean(value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

/// A URL lettre can send through; its own parser decides, so what passes here connects.
fn smtp_url(value: &str) -> Result<SecretUrl, String> {
    type Smtp = lettre::AsyncSmtpTransport<lettre::Tokio1Executor>;
    Smtp::from_url(value)
        .map_err(|_| "expected smtp://host:port, smtp://user:pass@host:587?tls=required or smtps://…".to_owned())?;
    Ok(SecretUrl::new(value))
}

fn bounded<T: std::str::FromStr + PartialOrd + std::fmt::Display>(value: &str, min: T, max: T) -> Result<T, String> {
    match value.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(format!("expected a whole number from {min} to {max}")),
    }
}

fn non_empty(value: &str) -> Result<&str, String> {
    if value.is_empty() { Err("must not be empty".into()) } else { Ok(value) }
}

fn database_url(value: &str) -> Result<SecretUrl, String> {
    if crate::storage::Backend::from_url(value).is_none() {
        return Err("expected a URL starting with sqlite:, postgres: or mysql:".into());
    }
    Ok(SecretUrl::new(value))
}

fn jwt_secret(value: &str) -> Result<SecretString, String> {
    if value.len() < 32 {
        return Err(format!("must be at least 32 bytes (got {})", value.len()));
    }
    Ok(SecretString::from(value))
}

fn public_url(value: &str) -> Result<String, String> {
    let trimmed = value.trim().trim_end_matches('/');
    if (trimmed.starts_with("http://") || trimmed.starts_with("https://")) && trimmed.len() > "https://".len() {
        Ok(trimmed.to_owned())
    } else {
        Err(format!("expected an http:// or https:// URL (got {value:?})"))
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
