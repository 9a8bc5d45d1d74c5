//! A local SMTP server for development and tests: it accepts every message for every recipient
//! and keeps each one as a single `.eml` file in a directory, so a developer can open the
//! verification mail `make run` sent, and a test can read back what a service mailed.
//!
//! It speaks the plain-text subset of ESMTP (RFC 5321) that mail submitters use: `EHLO`/`HELO`,
//! `MAIL FROM` (with `SIZE=`, `BODY=8BITMIME`, `SMTPUTF8`), `RCPT TO`, `DATA` with dot-unstuffing,
//! `RSET`, `NOOP`, `VRFY`, `HELP`, `QUIT`. No TLS and no authentication: it listens on loopback.
//!
//! Files are written atomically (a hidden temporary file, then a rename), and their names start
//! with the UTC receive time and a sequence number, so sorting the names sorts by arrival.
#![forbid(unsafe_code)]

mod session;
mod store;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

pub use store::{StoredMessage, list, read};

/// Limits of the server. The defaults suit development and tests.
#[derive(Clone, Debug)]
pub struct MailSinkConfig {
    /// The largest message accepted, in bytes after dot-unstuffing; larger ones get `552`.
    pub max_message_bytes: usize,
    /// Recipients accepted per message; more get `452`.
    pub max_recipients: usize,
    /// A client silent for this long is sent `421` and disconnected.
    pub idle_timeout: Duration,
    /// The name the server gives itself in its greeting.
    pub hostname: String,
}

impl Default for MailSinkConfig {
    fn default() -> Self {
        MailSinkConfig {
            max_message_bytes: 10 * 1024 * 1024,
            max_recipients: 100,
            idle_timeout: Duration::from_secs(300),
            hostname: "keel-mailsink".to_owned(),
        }
    }
}

/// The SMTP server; see the crate documentation.
pub struct MailSink;

impl MailSink {
    /// Binds `addr` (port 0 picks a free one), creates `dir` if needed and serves until the
    /// returned handle is shut down or dropped.
    pub async fn start(
        addr: impl tokio::net::ToSocketAddrs,
        dir: impl AsRef<Path>,
    ) -> io::Result<(SocketAddr, MailSinkHandle)> {
        Self::start_with(addr, dir, MailSinkConfig::default()).await
    }

    /// [`MailSink::start`] with explicit limits.
    pub async fn start_with(
        addr: impl tokio::net::ToSocketAddrs,
        dir: impl AsRef<Path>,
        config: MailSinkConfig,
    ) -> io::Result<(SocketAddr, MailSinkHandle)> {
        let dir = dir.as_ref().to_path_buf();
        tokio::fs::create_dir_all(&dir).await?;
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let (stored_tx, _) = broadcast::channel(256);
        let shared = Arc::new(session::Shared {
            config,
            store: store::Store::new(dir.clone()),
            stored_tx: stored_tx.clone(),
        });
        let accept_loop = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        let shared = shared.clone();
                        tokio::spawn(async move {
                            if let Err(err) = session::serve(stream, shared).await {
                                tracing::debug!(%peer, error = %err, "smtp session ended with an error");
                            }
                        });
                    }
                    Err(err) => {
                        // Out of file descriptors and the like: back off rather than spin.
                        tracing::warn!(error = %err, "smtp accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Ok((
            local_addr,
            MailSinkHandle {
                dir,
                accept_loop,
                stored_tx,
            },
        ))
    }
}

/// Keeps the server running; dropping it stops accepting connections.
pub struct MailSinkHandle {
    dir: PathBuf,
    accept_loop: JoinHandle<()>,
    stored_tx: broadcast::Sender<PathBuf>,
}

impl MailSinkHandle {
    /// The directory messages are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of every message stored from now on, as it is stored.
    pub fn subscribe(&self) -> broadcast::Receiver<PathBuf> {
        self.stored_tx.subscribe()
    }

    /// Every stored message, oldest first.
    pub fn list(&self) -> io::Result<Vec<PathBuf>> {
        list(&self.dir)
    }

    /// Stops accepting connections (sessions already open finish on their own).
    pub fn shutdown(self) {}
}

impl Drop for MailSinkHandle {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}
