//! Writing messages to disk and reading them back.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use mail_parser::{MessageParser, PartType};

/// Where messages go, and the sequence that keeps names unique within one process.
pub(crate) struct Store {
    dir: PathBuf,
    sequence: AtomicU64,
}

impl Store {
    pub(crate) fn new(dir: PathBuf) -> Store {
        Store {
            dir,
            sequence: AtomicU64::new(0),
        }
    }

    /// Writes one message (envelope lines first, then the data as received) and returns its path.
    /// The temporary name starts with a dot so `list` never sees a half-written file.
    pub(crate) async fn save(
        &self,
        envelope_from: &str,
        envelope_to: &[String],
        data: &[u8],
    ) -> io::Result<PathBuf> {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let received = chrono::Utc::now();
        let name = format!(
            "{}-{:06}-{}.eml",
            received.format("%Y%m%dT%H%M%S%.6fZ"),
            sequence % 1_000_000,
            std::process::id()
        );
        let mut contents = Vec::with_capacity(data.len() + 256);
        // Postfix-style envelope headers: the only place Bcc recipients are visible.
        contents.extend_from_slice(format!("Return-Path: <{envelope_from}>\r\n").as_bytes());
        for recipient in envelope_to {
            contents.extend_from_slice(format!("X-Original-To: {recipient}\r\n").as_bytes());
        }
        contents.extend_from_slice(data);
        let final_path = self.dir.join(&name);
        let temp_path = self.dir.join(format!(".{name}.tmp"));
        {
            use tokio::io::AsyncWriteExt;
            let mut file = tokio::fs::File::create(&temp_path).await?;
            file.write_all(&contents).await?;
            file.sync_all().await?;
        }
        tokio::fs::rename(&temp_path, &final_path).await?;
        Ok(final_path)
    }
}

/// Every stored message in `dir`, oldest first (names sort by receive time).
pub fn list(dir: impl AsRef<Path>) -> io::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_message = path.extension().is_some_and(|ext| ext == "eml")
            && !path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with('.'));
        if is_message {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// One stored message, parsed enough to assert on.
#[derive(Clone, Debug)]
pub struct StoredMessage {
    pub path: PathBuf,
    /// Recipients given in `RCPT TO` (includes Bcc).
    pub envelope_to: Vec<String>,
    /// The `MAIL FROM` address.
    pub envelope_from: String,
    /// Addresses in the `From` header.
    pub from: Vec<String>,
    /// Addresses in the `To` header.
    pub to: Vec<String>,
    pub subject: Option<String>,
    /// The first text/plain body, decoded (quoted-printable, base64, charset).
    pub text: Option<String>,
    /// The first text/html body, decoded.
    pub html: Option<String>,
    /// The file's bytes.
    pub raw: Vec<u8>,
}

impl StoredMessage {
    /// The value of the first header called `name` (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<String> {
        let message = MessageParser::default().parse(&self.raw)?;
        message
            .headers()
            .iter()
            .find(|header| header.name().eq_ignore_ascii_case(name))
            .and_then(|header| header.value().as_text().map(str::to_owned))
    }
}

/// Reads and parses the message at `path`.
pub fn read(path: impl AsRef<Path>) -> io::Result<StoredMessage> {
    let path = path.as_ref();
    let raw = std::fs::read(path)?;
    let parsed_raw = raw.clone();
    let message = MessageParser::default().parse(&parsed_raw).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a parsable message", path.display()),
        )
    })?;
    let addresses = |address: Option<&mail_parser::Address<'_>>| -> Vec<String> {
        address
            .map(|address| {
                address
                    .iter()
                    .filter_map(|addr| addr.address().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let text = message.text_bodies().find_map(|part| match &part.body {
        PartType::Text(text) => Some(text.to_string()),
        _ => None,
    });
    let html = message.html_bodies().find_map(|part| match &part.body {
        PartType::Html(html) => Some(html.to_string()),
        _ => None,
    });
    let (envelope_from, envelope_to) = envelope(&raw);
    Ok(StoredMessage {
        path: path.to_path_buf(),
        envelope_to,
        envelope_from,
        from: addresses(message.from()),
        to: addresses(message.to()),
        subject: message.subject().map(str::to_owned),
        text,
        html,
        raw,
    })
}

/// The envelope lines `Store::save` wrote at the top of the file.
fn envelope(raw: &[u8]) -> (String, Vec<String>) {
    let mut from = String::new();
    let mut to = Vec::new();
    for line in raw.split(|&byte| byte == b'\n') {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        if let Some(value) = line.strip_prefix("Return-Path: ") {
            from = value
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned();
        } else if let Some(value) = line.strip_prefix("X-Original-To: ") {
            to.push(value.to_owned());
        } else {
            break;
        }
    }
    (from, to)
}
