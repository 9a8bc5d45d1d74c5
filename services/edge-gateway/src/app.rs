//! Wiring: build the gateway from its configuration and descriptors, bind, serve, shut down.
//!
//! Tests call the same [`Application::build`] with `127.0.0.1:0`, so what is tested is what runs.
//! The admin listener, when configured, is the kernel's admin server ([`keel_kernel::admin`]).
//! Shutdown: `/readyz` turns 503 first, then the listener stops accepting and in-flight requests
//! (open streams included) get `http.shutdown_grace_ms` to finish before they are cut.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prost_reflect::DescriptorPool;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use keel_kernel::admin::AdminError;

use crate::config::{ConfigError, Loaded};
use crate::gateway::Gateway;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot bind {addr} ({key}): {source}")]
    Bind {
        key: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// A serving gateway.
pub struct Application {
    /// The REST listener's address (the real port when configured with port 0).
    pub addr: SocketAddr,
    /// The admin listener's, when there is one.
    pub admin_addr: Option<SocketAddr>,
    gateway: Arc<Gateway>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Application {
    /// Compile the route table against `pool`, bind the listeners and start serving.
    pub async fn build(loaded: Loaded, pool: DescriptorPool) -> Result<Application, StartError> {
        let gateway = Arc::new(Gateway::new(&loaded, &pool)?);
        let config = &loaded.config;
        let tls = config
            .http
            .tls
            .as_ref()
            .map(crate::tls::build)
            .transpose()?;
        let listener = bind(config.http.listen, "http.listen").await?;
        let addr = local_addr(&listener, config.http.listen, "http.listen")?;
        let admin = match &config.admin {
            Some(admin) => Some(gateway.endpoints.admin_server(admin).bind().await?),
            None => None,
        };
        let admin_addr = admin.as_ref().map(|admin| admin.local_addr);
        tracing::info!(%addr, tls = tls.is_some(), admin = ?admin_addr, routes = gateway.router().bindings().len(), "edge gateway serving");

        let warm = gateway.clone();
        tokio::spawn(async move { warm.warm_up().await });

        let shutdown = CancellationToken::new();
        if let (Some(tls), Some(files)) = (&tls, &config.http.tls) {
            let interval = Duration::from_millis(files.reload_interval_ms.get());
            tokio::spawn(crate::tls::watch(
                tls.certificate.clone(),
                files.clone(),
                interval,
                shutdown.clone(),
            ));
        }
        if let Some(nats) = config.nats.clone() {
            tokio::spawn(crate::revocation::follow(
                gateway.clone(),
                nats,
                shutdown.clone(),
            ));
        } else {
            tracing::warn!(
                "no `nats` section: revoked sessions and API keys are not refused before their tokens and cache entries expire"
            );
        }
        let drain = CancellationToken::new();
        let mut server = tokio::spawn(crate::serve::serve(
            listener,
            tls,
            gateway.clone(),
            drain.clone(),
        ));
        // The admin listener stops with the public one's drain, as `/readyz` turns 503.
        let admin_task =
            admin.map(|admin| tokio::spawn(admin.serve(gateway.endpoints.shutdown_token())));
        let grace = Duration::from_millis(config.http.shutdown_grace_ms);
        let ready = gateway.clone();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            stop.cancelled().await;
            ready.endpoints.begin_shutdown();
            drain.cancel();
            match tokio::time::timeout(grace, &mut server).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::error!(error = %err, "the HTTP server task failed"),
                Err(_) => {
                    tracing::warn!(
                        grace_ms = grace.as_millis() as u64,
                        "requests outlived the shutdown grace period; cutting them"
                    );
                    server.abort();
                }
            }
            if let Some(admin) = admin_task {
                let _ = admin.await;
            }
            tracing::info!("edge gateway stopped");
        });
        Ok(Application {
            addr,
            admin_addr,
            gateway,
            shutdown,
            task,
        })
    }

    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// Shut down gracefully and wait for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Serve until SIGTERM or SIGINT, then shut down gracefully. What `main` calls.
    pub async fn run_until_signal(self) {
        keel_kernel::server::shutdown_signal().await;
        tracing::info!("signal received, shutting down");
        self.stop().await;
    }
}

async fn bind(addr: SocketAddr, key: &'static str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { key, addr, source })
}

fn local_addr(
    listener: &TcpListener,
    addr: SocketAddr,
    key: &'static str,
) -> Result<SocketAddr, StartError> {
    listener
        .local_addr()
        .map_err(|source| StartError::Bind { key, addr, source })
}
