//! `Application`: a node plus its HTTP gateway, as the binary and the API
//! tests run it.

use crate::config::Settings;
use crate::http::{no_route, routes};
use crate::node::{Node, StartError};
use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use std::net::{SocketAddr, TcpListener};

pub struct Application {
    address: SocketAddr,
    server: Server,
    node: Node,
}

impl Application {
    /// Binds the listener (port 0 picks a free one), starts the node and
    /// builds the server; nothing is served until [`Self::run_until_stopped`].
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        let listener = TcpListener::bind(&settings.http.bind)?;
        let address = listener.local_addr()?;
        let workers = settings.http.workers;
        let node = Node::start(settings).await?;
        let app_node = node.clone();
        let mut server = HttpServer::new(move || {
            App::new().configure(routes(app_node.clone())).default_service(web::to(no_route))
        });
        if workers > 0 {
            server = server.workers(workers);
        }
        let server = match server.listen(listener) {
            Ok(server) => server.run(),
            Err(e) => {
                node.shutdown().await;
                return Err(e.into());
            }
        };
        tracing::info!(%address, data = %node.data_dir().display(), "listening on http://{address}");
        Ok(Application { address, server, node })
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
    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until the server stops (SIGINT or SIGTERM: actix-web lets
    /// requests in flight finish), then shuts the node down, flushing the
    /// store.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        self.node.shutdown().await;
        served
    }
}
