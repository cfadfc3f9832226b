//! The application as a value: build it from a configuration (connect, migrate, load keys,
//! bind), ask its port, then run it until a shutdown signal, finishing in-flight requests.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use url::Url;
use webauthn_rs::{Webauthn, WebauthnBuilder};

use crate::config::{Config, Environment, MailConfig, SecretUrl};
use crate::domain::jwt::LEEWAY_SECS;
use crate::domain::limits::RouteLimits;
use crate::domain::lockout::Policy;
use crate::domain::time::Timestamp;
use crate::http;
use crate::http::EdgeSettings;
use crate::http::metrics::Metrics;
use crate::http::serve::{ConnectionLimits, HttpThreads, serve, thread_count};
use crate::http::state::{AppState, Services};
use crate::mail::delivery::{Delivery, MailStats, Transport};
use crate::mail::templates::Branding;
use crate::service::abuse::AbuseStats;
use crate::service::abuse::limiter::{Counters, RateLimiter};
use crate::service::abuse::lockout::Lockout;
use crate::service::abuse::redis_counters::RedisCounters;
use crate::service::accounts::Accounts;
use crate::service::administration::Administration;
use crate::service::auth::cache::AuthCache;
use crate::service::auth::keys::Keys;
use crate::service::auth::tokens::{TokenSettings, Tokens};
use crate::service::auth::{Auth, AuthParts};
use crate::service::cleanup::{self, Retention};
use crate::service::cursor::Cursors;
use crate::service::hashing::PasswordHasher;
use crate::service::health::Health;
use crate::service::notices::{MailSettings, Notices};
use crate::service::recovery::Recovery;
use crate::service::sealing::Sealer;
use crate::service::second_factors::{FactorParts, SecondFactors};
use crate::service::transfers::{LedgerStats, Transfers};
use crate::service::wallets::Wallets;
use crate::storage::Store;

/// A built, bound, not yet serving application.
pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    store: Store,
    keys: Arc<Keys>,
    retention: Retention,
    delivery: Delivery,
    router: axum::Router,
    limits: ConnectionLimits,
    /// One per core; the store's pool has a share for each.
    http_threads: usize,
    connections: Gauge,
}

/// How often the sweeper deletes ended sessions and expired tokens.
const SWEEP_INTERVAL: Duration = Duration::from_secs(600);

/// At shutdown, a request already in flight may still be sending its headers (within the
/// header timeout: a new connection counts as busy, so it is waited for) and then runs within
/// the request timeout; this much more is given for its answer to be written. Connections still
/// open after the three are closed.
const ANSWER_WRITE_GRACE: Duration = Duration::from_secs(5);

/// How long a retired signing key must keep verifying: the longest an access token signed with
/// it can live, plus the time other nodes may take to notice the rotation, plus clock skew.
pub fn key_retention(config: &Config) -> Duration {
    config.access_token_ttl + Keys::RELOAD_INTERVAL + Duration::from_secs(LEEWAY_SECS.unsigned_abs())
}

/// The mail queue's front: links go to the application's pages when `TESSERA_APP_URL` is set,
/// else to this service's own at `public_url`.
pub fn notices(mail: &MailConfig, public_url: &str, wake: Arc<Notify>, stats: AbuseStats) -> Notices {
    let branding = Branding {
        product: mail.product_name.clone(),
        link_base: mail.app_url.clone().unwrap_or_else(|| public_url.to_owned()),
    };
    let settings = MailSettings {
        branding,
        verify_ttl: mail.verify_token_ttl,
        reset_ttl: mail.reset_token_ttl,
        per_address_per_hour: mail.per_address_per_hour,
    };
    Notices::new(settings, wake, stats)
}

/// This service as a WebAuthn relying party. Its id is `TESSERA_WEBAUTHN_RP_ID`, else the host
/// of `public_url`; browsers refuse an IP address as one, so a service reached by address
/// (the development default) is `localhost`, used from `http://localhost:PORT`. Passkeys work
/// from `TESSERA_WEBAUTHN_ORIGINS`, else from `public_url`'s origin.
pub fn relying_party(config: &Config, public_url: &str) -> anyhow::Result<Arc<Webauthn>> {
    let mut public = Url::parse(public_url).map_err(|e| anyhow::anyhow!("TESSERA_PUBLIC_URL: {e}"))?;
    let by_address = matches!(public.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)));
    if by_address && config.webauthn_rp_id.is_none() {
        public.set_host(Some("localhost")).map_err(|e| anyhow::anyhow!("TESSERA_PUBLIC_URL: {e}"))?;
    }
    let rp_id = match &config.webauthn_rp_id {
        Some(id) => id.clone(),
        None => public.host_str().unwrap_or("localhost").to_owned(),
    };
    let origins: Vec<Url> = if config.webauthn_origins.0.is_empty() {
        vec![public]
    } else {
        config.webauthn_origins.0.iter().map(|o| Url::parse(o)).collect::<Result<_, _>>()?
    };
    let refused = |e| anyhow::anyhow!("TESSERA_WEBAUTHN_RP_ID {rp_id:?} does not fit the origins {origins:?}: {e}");
    let mut builder = WebauthnBuilder::new(&rp_id, &origins[0]).map_err(refused)?.rp_name(&config.mail.product_name);
    for origin in &origins[1..] {
        builder = builder.append_allowed_origin(origin);
    }
    Ok(Arc::new(builder.build().map_err(refused)?))
}

/// The rate limiter: its counters in Redis when `TESSERA_REDIS_URL` is set, else in the database.
fn rate_limiter(config: &Config, store: &Store, stats: AbuseStats) -> anyhow::Result<RateLimiter> {
    let counters = match &config.redis_url {
        Some(url) => Counters::Redis(
            RedisCounters::new(url.expose()).map_err(|error| anyhow::anyhow!("TESSERA_REDIS_URL: {error}"))?,
        ),
        None => Counters::Database(store.clone()),
    };
    let limits = RouteLimits { default: config.rate_limit, overrides: config.rate_limits.0.clone() };
    Ok(RateLimiter::new(counters, limits, stats))
}

impl Application {
    /// Connects to the database, applies migrations, loads the signing keys and binds the
    /// listener (port 0 picks a free port).
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let http_threads = thread_count();
        let shares = u32::try_from(http_threads).unwrap_or(u32::MAX);
        let store =
            Store::connect_for_server(config.database_url.expose(), config.database_max_connections, shares).await?;
        store.migrate().await?;
        let sealer = Sealer::new(config.master_key())?;
        if !sealer.is_sealing() && config.environment == Environment::Production {
            anyhow::bail!("TESSERA_MASTER_KEY (or TESSERA_MASTER_KEY_FILE) is required with TESSERA_ENV=production");
        }
        if !sealer.is_sealing() {
            tracing::warn!(
                "TESSERA_MASTER_KEY is not set: signing keys and server secrets are stored in clear, so a copy of \
                 the database can mint tokens; set it outside development"
            );
        }
        let keys = Arc::new(Keys::load(store.clone(), sealer.clone(), config.jwt_secret.clone()).await?);
        let listener = TcpListener::bind(config.listen).await?;
        let address = listener.local_addr()?;
        // The URL clients reach this service at: the tokens' issuer and the mailed links' base.
        let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{address}"));
        let hasher = PasswordHasher::new(config.hash_concurrency);
        let settings = TokenSettings {
            issuer: public_url.clone(),
            audience: config.token_audience.clone(),
            access_ttl: config.access_token_ttl,
            refresh_ttl: config.refresh_token_ttl,
            session_max_age: config.session_max_age,
            refresh_reuse_grace: config.refresh_reuse_grace,
            max_sessions_per_user: config.max_sessions_per_user,
        };
        let tokens = Tokens::load(&store, &sealer, keys.clone(), settings).await?;
        let cache = AuthCache::new(config.session_cache_ttl);
        let wake = Arc::new(Notify::new());
        let abuse = AbuseStats::default();
        let notices = notices(&config.mail, &public_url, wake.clone(), abuse.clone());
        let mail = &config.mail;
        let lockout = Lockout::new(store.clone(), Policy { threshold: config.lockout_threshold });
        let accounts = Accounts::new(
            store.clone(),
            hasher.clone(),
            cache.clone(),
            notices.clone(),
            lockout.clone(),
            mail.require_verification,
        );
        let stats = MailStats::default();
        let ledger_stats = LedgerStats::default();
        if mail.smtp_url.is_none() {
            if config.environment == Environment::Production {
                anyhow::bail!(
                    "TESSERA_SMTP_URL is required with TESSERA_ENV=production: writing mails, and the links in them, \
                     to the log is for development"
                );
            }
            tracing::warn!(
                "TESSERA_SMTP_URL is not set: mails, with their links, are written to the log (development only)"
            );
        }
        let cursors = Cursors::load(&store, &sealer).await?;
        let delivery = Delivery {
            store: store.clone(),
            transport: Transport::from_url(mail.smtp_url.as_ref().map(SecretUrl::expose))?,
            from: mail.from.clone(),
            retry_delay: mail.retry_delay,
            give_up_after: mail.give_up_after,
            wake,
            stats: stats.clone(),
        };
        let factors = SecondFactors::new(
            store.clone(),
            FactorParts {
                sealer: sealer.clone(),
                hasher: hasher.clone(),
                lockout: lockout.clone(),
                notices: notices.clone(),
                cache: cache.clone(),
                policy: config.require_mfa,
                relying_party: relying_party(config, &public_url)?,
            },
        );
        let state = AppState::new(Services {
            admin: Administration::new(store.clone(), accounts.clone(), cache.clone(), cursors.clone()),
            recovery: Recovery::new(store.clone(), hasher.clone(), cache.clone(), notices.clone(), abuse.clone()),
            accounts,
            auth: Auth::new(
                store.clone(),
                AuthParts {
                    hasher: hasher.clone(),
                    tokens,
                    cache,
                    cursors: cursors.clone(),
                    factors: factors.clone(),
                    lockout,
                    require_verification: mail.require_verification,
                    require_mfa: config.require_mfa,
                },
            ),
            limiter: rate_limiter(config, &store, abuse.clone())?,
            health: Health::new(store.clone()),
            wallets: Wallets::new(store.clone(), cursors.clone()),
            transfers: Transfers::new(store.clone(), ledger_stats.clone()),
            factors,
            hasher,
            metrics: Metrics::new(&stats, &ledger_stats, &abuse),
        });
        let connections = state.metrics.connections.clone();
        let edge = EdgeSettings {
            request_timeout: config.request_timeout,
            cors_origins: config.cors_origins.0.clone(),
            trusted_proxies: config.trusted_proxies.0.clone(),
        };
        let limits = ConnectionLimits {
            header_timeout: config.header_timeout,
            max_connections: config.max_connections,
            drain_timeout: config.header_timeout + config.request_timeout + ANSWER_WRITE_GRACE,
        };
        let retention = Retention { signing_keys: key_retention(config), audit_events: config.audit_retention };
        let router = http::router(state, &edge);
        Ok(Self { listener, address, store, keys, retention, delivery, router, limits, http_threads, connections })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish and closes the pool.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        tracing::info!(address = %self.address, "tessera listening");
        let background = [
            spawn_key_reloader(self.keys.clone()),
            spawn_sweeper(self.store.clone(), self.retention),
            self.delivery.spawn(),
        ];
        let threads = http_threads(self.http_threads, &self.store);
        let served = serve(self.listener, self.router, self.limits, threads, self.connections, shutdown).await;
        for task in background {
            task.abort();
        }
        self.store.close().await;
        tracing::info!("tessera stopped");
        served
    }
}

/// `count` HTTP threads, each taking connections of its own as it starts and closing them as
/// it stops.
fn http_threads(count: usize, store: &Store) -> HttpThreads {
    let (entering, leaving) = (store.clone(), store.clone());
    HttpThreads {
        count,
        started: Arc::new(move || entering.enter_http_thread()),
        stopping: Arc::new(move || {
            let store = leaving.clone();
            Box::pin(async move { store.leave_http_thread().await })
        }),
    }
}

/// Re-reads the signing keys now and then, so a rotation elsewhere reaches this node.
fn spawn_key_reloader(keys: Arc<Keys>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Keys::RELOAD_INTERVAL);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if let Err(error) = keys.reload().await {
                tracing::warn!(%error, "could not reload signing keys");
            }
        }
    })
}

/// Deletes ended sessions and expired tokens shortly after start and then periodically.
fn spawn_sweeper(store: Store, retention: Retention) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
        loop {
            ticks.tick().await;
            match cleanup::sweep(&store, Timestamp::now(), retention).await {
                Ok(swept) => tracing::debug!(?swept, "swept ended sessions and tokens"),
                Err(error) => tracing::warn!(%error, "sweep failed"),
            }
        }
    })
}

async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
