//! `Application`: a node plus its HTTP gateway, as the binary and the API
//! tests run it.

pub mod failover;

use crate::config::{Settings, ShutdownSettings};
use crate::http::{no_route, routes};
use crate::node::{Node, StartError};
use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

pub struct Application {
    address: SocketAddr,
    server: Server,
    node: Node,
    shutdown: ShutdownSettings,
}

impl Application {
    /// Binds the listener (port 0 picks a free one), starts the node and
    /// builds the server; nothing is served until [`Self::run_until_stopped`].
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        Application::build_with_clock(settings, std::sync::Arc::new(crate::clock::SystemClock)).await
    }

    /// Like [`Application::build`], with the engine's time from `clock`.
    pub async fn build_with_clock(
        settings: Settings,
        clock: std::sync::Arc<dyn crate::clock::Clock>,
    ) -> Result<Application, StartError> {
        let address = settings.http.bind.clone();
        let listener = TcpListener::bind(&address)
            .map_err(|source| StartError::Bind { address: address.clone(), source })?;
        Application::build_on(settings, clock, None, listener).await
    }

    /// Like [`Application::build_with_clock`], on a listener already bound
    /// (a failover leader takes over its follower's socket, so that no
    /// connection is refused in between) and, if given, on `store`.
    pub async fn build_on(
        settings: Settings,
        clock: std::sync::Arc<dyn crate::clock::Clock>,
        store: Option<crate::store::Store>,
        listener: TcpListener,
    ) -> Result<Application, StartError> {
        let address = listener.local_addr()?;
        let open = crate::auth::Authenticator::from_settings(&settings.auth, &settings.admin)?.is_open();
        if open && !address.ip().is_loopback() {
            // Like Redis's protected mode: open only where only this machine
            // can reach it.
            return Err(StartError::OpenToTheNetwork { bind: settings.http.bind.clone() });
        }
        let timeouts = (settings.http.header_timeout_ms, settings.http.body_timeout_ms);
        let workers = settings.http.workers;
        let max_connections = settings.http.max_connections;
        let shutdown = settings.shutdown.clone();
        let node = match store {
            Some(store) => Node::start_on(settings, clock, store).await?,
            None => Node::start_with_clock(settings, clock).await?,
        };
        let app_node = node.clone();
        let mut server = HttpServer::new(move || {
            App::new().configure(routes(app_node.clone())).default_service(web::to(no_route))
        })
        // Signals are ours: we drain before the listener closes.
        .disable_signals()
        .shutdown_timeout(shutdown.timeout_ms.div_ceil(1000).max(1))
        // Headers that do not arrive in time: 408 and the connection closes,
        // so slow clients cannot hold the connections others need.
        .client_request_timeout(Duration::from_millis(timeouts.0));
        if workers > 0 {
            server = server.workers(workers);
        }
        server = server.max_connections(max_connections);
        let server = match server.listen(listener) {
            Ok(server) => server.run(),
            Err(e) => {
                node.shutdown().await;
                return Err(e.into());
            }
        };
        tracing::info!(%address, data = %node.data_dir().display(), "listening on http://{address}");
        if open {
            tracing::warn!(
                %address,
                "auth: open: no keys are configured (auth.keys, auth.keys_file), so anyone who can reach \
                 {address} may take any step; listening on loopback only"
            );
        }
        Ok(Application { address, server, node, shutdown })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn node(&self) -> Node {
        self.node.clone()
    }

    /// Stops the server from elsewhere (tests, an embedding supervisor).
    pub fn server_handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until the server is stopped or SIGTERM/SIGINT arrives, then
    /// shuts down gracefully: readiness and new requests answer 503 at once,
    /// requests in flight finish (within `shutdown.timeout_ms`), the node
    /// stops and the store is flushed.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let signals =
            tokio::spawn(stop_on_signal(self.node.clone(), self.server.handle(), self.shutdown.clone()));
        let served = self.server.await;
        signals.abort();
        let timeout = Duration::from_millis(self.shutdown.timeout_ms);
        if tokio::time::timeout(timeout, self.node.shutdown()).await.is_err() {
            tracing::error!(?timeout, "the node did not stop in time");
            return Err(std::io::Error::other("the node did not stop in time"));
        }
        served
    }
}

/// Waits for SIGTERM or SIGINT, drains for `drain_ms`, then stops the server.
async fn stop_on_signal(node: Node, server: ServerHandle, shutdown: ShutdownSettings) {
    let signal = wait_for_signal().await;
    tracing::info!(signal, drain_ms = shutdown.drain_ms, "shutting down");
    node.drain();
    tokio::time::sleep(Duration::from_millis(shutdown.drain_ms)).await;
    server.stop(true).await;
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        _ => {
            tracing::error!("cannot listen for signals; stop the node with SIGKILL");
            std::future::pending().await
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "ctrl-c"
}
