//! `keel-mailsink --listen 127.0.0.1:2525 --dir .dev/mail`: a local SMTP server that keeps every
//! message as an `.eml` file and prints where each one went.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use keel_mailsink::{MailSink, MailSinkConfig};

const USAGE: &str =
    "usage: keel-mailsink [--listen 127.0.0.1:2525] [--dir .dev/mail] [--max-bytes 10485760]";

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut listen: SocketAddr = "127.0.0.1:2525".parse()?;
    let mut dir = PathBuf::from(".dev/mail");
    let mut config = MailSinkConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .with_context(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--listen" => {
                let value = value("--listen")?;
                listen = value.parse().with_context(|| {
                    format!("--listen: {value:?} is not an address like 127.0.0.1:2525")
                })?;
            }
            "--dir" => dir = PathBuf::from(value("--dir")?),
            "--max-bytes" => {
                let value = value("--max-bytes")?;
                config.max_message_bytes = value
                    .parse()
                    .with_context(|| format!("--max-bytes: {value:?} is not a number"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let (addr, sink) = MailSink::start_with(listen, &dir, config)
        .await
        .with_context(|| format!("cannot listen on {listen} or write to {}", dir.display()))?;
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    println!(
        "keel-mailsink: SMTP on {addr}; every message is saved under {} (one .eml each)",
        dir.display()
    );
    let mut stored = sink.subscribe();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            path = stored.recv() => match path {
                Ok(path) => println!("keel-mailsink: new mail {}", path.display()),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    println!("keel-mailsink: {missed} more messages saved");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    Ok(())
}
