//! The application as a value: build it from a configuration (connect, migrate, load keys,
//! bind), ask its port, then run it until a shutdown signal, finishing in-flight requests.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::domain::accounts::Accounts;
use crate::domain::auth::{Auth, TokenSettings};
use crate::domain::hashing::PasswordHasher;
use crate::domain::keys;
use crate::http;
use crate::http::metrics::Metrics;
use crate::storage::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub accounts: Accounts,
    pub auth: Auth,
    pub store: Store,
    pub hasher: PasswordHasher,
    pub metrics: Arc<Metrics>,
}

/// A built, bound, not yet serving application.
pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    store: Store,
    router: axum::Router,
}

impl Application {
    /// Connects to the database, applies migrations, loads the signing keys and binds the
    /// listener (port 0 picks a free port).
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let store = Store::connect(
            config.database_url.expose(),
            config.database_max_connections,
        )
        .await?;
        store.migrate().await?;
        let keys = keys::load_or_create(&store).await?;
        let listener = TcpListener::bind(config.listen).await?;
        let address = listener.local_addr()?;
        let issuer = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{address}"));
        let hasher = PasswordHasher::new(config.hash_concurrency);
        let settings = TokenSettings {
            issuer,
            audience: config.token_audience.clone(),
            access_ttl: config.access_token_ttl,
            refresh_ttl: config.refresh_token_ttl,
            session_max_age: config.session_max_age,
        };
        let state = AppState {
            accounts: Accounts::new(store.clone(), hasher.clone()),
            auth: Auth::new(store.clone(), hasher.clone(), keys, settings),
            store: store.clone(),
            hasher,
            metrics: Metrics::new(),
        };
        Ok(Self {
            listener,
            address,
            store,
            router: http::router(state),
        })
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
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(address = %self.address, "tessera listening");
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await;
        self.store.close().await;
        tracing::info!("tessera stopped");
        served
    }
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
