//! How each setting's text becomes its value. Every parser names what it expected and echoes
//! what it got, except secrets, which are never echoed (URLs are shown with the password
//! masked).

use crate::domain::second_factor::MfaPolicy;
use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

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
        match Url::parse(self.expose()) {
            Ok(mut url) if url.password().is_some() => match url.set_password(Some("***")) {
                Ok(()) => url.to_string(),
                Err(()) => "(a URL with a password)".to_owned(),
            },
            Ok(_) => self.expose().to_owned(),
            // Unparsable: show nothing of it, it may hold a password.
            Err(_) => "(not a URL)".to_owned(),
        }
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.masked())
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn log_format(value: &str) -> Result<LogFormat, String> {
    match value.trim() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("expected text or json (got {value:?})")),
    }
}

/// A lifetime: at least one second.
pub fn duration(value: &str) -> Result<Duration, String> {
    match humantime::parse_duration(value.trim()) {
        Ok(d) if d >= Duration::from_secs(1) => Ok(d),
        Ok(_) => Err(format!("must be at least 1s (got {value:?})")),
        Err(_) => Err(format!("expected a duration like 15m, 12h or 30d (got {value:?})")),
    }
}

/// A duration that may be zero, to turn something off.
pub fn duration_or_zero(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value.trim()).map_err(|_| format!("expected a duration like 10s, or 0s (got {value:?})"))
}

/// The session cache's time-to-live: 0s to 5s, so a revocation reaches every node quickly.
pub fn session_cache_ttl(value: &str) -> Result<Duration, String> {
    match humantime::parse_duration(value.trim()) {
        Ok(d) if d <= Duration::from_secs(5) => Ok(d),
        _ => Err(format!("expected a duration from 0s to 5s (got {value:?})")),
    }
}

/// The first mail retry's wait: 10ms to 1h.
pub fn retry_delay(value: &str) -> Result<Duration, String> {
    match humantime::parse_duration(value.trim()) {
        Ok(d) if d >= Duration::from_millis(10) && d <= Duration::from_secs(3600) => Ok(d),
        _ => Err(format!("expected a duration from 10ms to 1h (got {value:?})")),
    }
}

pub fn boolean(value: &str) -> Result<bool, String> {
    match value.trim() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!("expected true or false (got {value:?})")),
    }
}

pub fn address(value: &str) -> Result<SocketAddr, String> {
    value.trim().parse().map_err(|_| format!("expected an address like 127.0.0.1:8080 (got {value:?})"))
}

/// A whole number from `MIN` to `MAX`, as a `T` (which must hold `MAX`).
pub fn bounded<T: TryFrom<u64>, const MIN: u64, const MAX: u64>(value: &str) -> Result<T, String> {
    let refused = || format!("expected a whole number from {MIN} to {MAX} (got {value:?})");
    match value.trim().parse::<u64>() {
        Ok(n) if (MIN..=MAX).contains(&n) => T::try_from(n).map_err(|_| refused()),
        _ => Err(refused()),
    }
}

/// One password hash per core, unless told otherwise.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn non_empty(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() { Err("must not be empty".into()) } else { Ok(value.to_owned()) }
}

/// `sqlite:`, `postgres:`, `mysql:` or `mariadb:`.
pub fn database_url(value: &str) -> Result<SecretUrl, String> {
    let url = SecretUrl::new(value.trim());
    if crate::storage::Backend::from_url(url.expose()).is_some() {
        Ok(url)
    } else {
        Err(format!("expected a URL starting with sqlite:, postgres: or mysql: (got {:?})", url.masked()))
    }
}

/// A URL lettre can send through; its own parser decides, so what passes here connects.
pub fn smtp_url(value: &str) -> Result<SecretUrl, String> {
    type Smtp = lettre::AsyncSmtpTransport<lettre::Tokio1Executor>;
    let url = SecretUrl::new(value.trim());
    Smtp::from_url(url.expose()).map_err(|_| {
        format!(
            "expected smtp://host:port, smtp://user:pass@host:587?tls=required or smtps://… (got {:?})",
            url.masked()
        )
    })?;
    Ok(url)
}

/// An HMAC secret: at least 32 bytes. Never echoed.
pub fn jwt_secret(value: &str) -> Result<SecretString, String> {
    if value.len() < 32 {
        return Err(format!("must be at least 32 bytes (got {})", value.len()));
    }
    Ok(SecretString::from(value))
}

/// An `http://` or `https://` base URL with a host, kept without a trailing slash so that
/// `{base}/page` joins cleanly.
pub fn base_url(value: &str) -> Result<String, String> {
    let refused = || format!("expected an http:// or https:// URL (got {value:?})");
    let url = Url::parse(value.trim()).map_err(|_| refused())?;
    let plain = url.query().is_none() && url.fragment().is_none() && url.password().is_none();
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() || !plain {
        return Err(refused());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

pub fn mailbox(value: &str) -> Result<lettre::message::Mailbox, String> {
    value.trim().parse().map_err(|_| format!("expected an address like Example <no-reply@example.com> (got {value:?})"))
}

/// Browser origins allowed to call the API across origins, each exactly as a browser sends it
/// in `Origin` (`https://app.example`, `http://localhost:3000`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins(pub Vec<String>);

/// Comma-separated exact origins; empty for none. A wildcard is refused: name each origin.
pub fn origins(value: &str) -> Result<Origins, String> {
    let mut origins = Vec::new();
    for item in value.split(',').map(str::trim).filter(|item| !item.is_empty()) {
        if item.contains('*') {
            return Err(format!("a wildcard is not allowed: name each origin (got {item:?})"));
        }
        let origin = Url::parse(item).ok().filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
        let exact = origin.map(|u| u.origin().ascii_serialization()).filter(|o| o == item.trim_end_matches('/'));
        match exact {
            Some(origin) => origins.push(origin),
            None => {
                return Err(format!("expected origins like https://app.example, separated by commas (got {item:?})"));
            }
        }
    }
    Ok(Origins(origins))
}

/// Per-route rate limits, overriding `TESSERA_RATE_LIMIT`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteOverrides(pub Vec<(crate::domain::limits::LimitedRoute, u32)>);

/// `login=10,refresh=120`; empty for none.
pub fn route_limits(value: &str) -> Result<RouteOverrides, String> {
    crate::domain::limits::RouteLimits::parse_overrides(value).map(RouteOverrides)
}

/// A Redis URL: `redis://` or `rediss://`, `unix://` or `redis+unix://`.
pub fn redis_url(value: &str) -> Result<SecretUrl, String> {
    let url = url::Url::parse(value.trim()).map_err(|_| "expected a URL like redis://127.0.0.1:6379/0".to_owned())?;
    if !matches!(url.scheme(), "redis" | "rediss" | "unix" | "redis+unix") {
        return Err(format!("expected a redis:// or rediss:// URL, got {}:", url.scheme()));
    }
    Ok(SecretUrl::new(value.trim()))
}

/// The networks whose peers are proxies that may say who the client is (`X-Forwarded-For`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxies(pub Vec<ipnet::IpNet>);

/// Comma-separated CIDR networks or single addresses; empty for none.
pub fn proxies(value: &str) -> Result<Proxies, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<ipnet::IpNet>().or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from)).map_err(
                |_| format!("expected networks like 10.0.0.0/8 or 127.0.0.1, separated by commas (got {item:?})"),
            )
        })
        .collect::<Result<_, _>>()
        .map(Proxies)
}

/// The master key: 32 bytes in base64. Never echoed.
pub fn master_key(value: &str) -> Result<SecretString, String> {
    match crate::domain::secrets::decode_master_key(value) {
        Some(_) => Ok(SecretString::from(value.trim())),
        None => Err("expected 32 bytes in base64 (`tessera keys new-master-key` makes one)".into()),
    }
}

/// The master key from a file (its only content, surrounding white space aside).
pub fn master_key_file(value: &str) -> Result<SecretString, String> {
    let text = std::fs::read_to_string(value.trim()).map_err(|e| format!("cannot read {value:?}: {e}"))?;
    master_key(&text).map_err(|reason| format!("{value:?}: {reason}"))
}

/// Where the service runs: in `production`, what is only fit for development is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

pub fn environment(value: &str) -> Result<Environment, String> {
    match value.trim() {
        "development" => Ok(Environment::Development),
        "production" => Ok(Environment::Production),
        _ => Err(format!("expected development or production (got {value:?})")),
    }
}

pub fn require_mfa(value: &str) -> Result<MfaPolicy, String> {
    MfaPolicy::parse(value).ok_or_else(|| format!("expected none, admin or all (got {value:?})"))
}
