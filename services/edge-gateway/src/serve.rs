//! The public listener: one port for HTTP/1.1 and HTTP/2 (h2c with prior knowledge, or ALPN `h2`
//! over TLS), and through it REST/JSON, native gRPC and gRPC-Web.
//!
//! hyper-util's auto builder reads the first bytes of each connection and picks the protocol, so
//! a `curl`, a browser and a tonic client can share the address. Each request goes straight to
//! [`crate::gateway::handle`]: the gateway routes for itself, so no web framework router sits in
//! between. Shutdown: the accept loop stops, then every connection is told to finish what it has
//! in flight (HTTP/2 GOAWAY, HTTP/1.1 close after the current response); the caller bounds how
//! long that may take.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::compression;
use crate::gateway::{Gateway, handle};
use crate::tls::Tls;

/// Accept connections until `drain`, then let the open ones finish.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Tls>,
    gateway: Arc<Gateway>,
    drain: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Many small concurrent gRPC calls per connection: no reason to hold clients to 200 streams.
    builder.http2().max_concurrent_streams(1024);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, typically: pause instead of spinning.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = drain.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let gateway = gateway.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = connection_service(gateway, peer);
            let served = match tls {
                None => {
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(connection).await
                }
                Some(tls) => {
                    let handshake = tls.acceptor.accept(stream);
                    let stream = match tokio::time::timeout(tls.handshake_timeout, handshake).await
                    {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(err)) => {
                            tracing::debug!(%peer, error = %err, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(connection).await
                }
            };
            if let Err(err) = served {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Every request of one connection, with the peer's address, through the gateway.
#[allow(clippy::type_complexity)] // an `impl` type cannot be named in an alias
fn connection_service(
    gateway: Arc<Gateway>,
    peer: SocketAddr,
) -> TowerToHyperService<
    compression::Compress<
        impl tower::Service<
            http::Request<Incoming>,
            Response = axum::response::Response,
            Error = Infallible,
            Future = impl Future<Output = Result<axum::response::Response, Infallible>> + Send,
        > + Clone
        + Send,
    >,
> {
    let compressor = gateway.compressor.clone();
    let each = move |request: http::Request<Incoming>| {
        let gateway = gateway.clone();
        async move { Ok::<_, Infallible>(handle(&gateway, peer, request.map(Body::new)).await) }
    };
    TowerToHyperService::new(compressor.layer(tower::service_fn(each)))
}
