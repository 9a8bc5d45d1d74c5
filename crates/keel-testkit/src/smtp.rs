//! An SMTP server for tests that send mail: `TestSmtp::start()` listens on a free loopback port
//! and keeps every message under a fresh directory; `wait_for` reads them back.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use keel_mailsink::{MailSink, MailSinkHandle};

pub use keel_mailsink::StoredMessage;

/// A running mail sink of one test. The directory is removed when this is dropped.
pub struct TestSmtp {
    addr: SocketAddr,
    sink: Option<MailSinkHandle>,
}

impl TestSmtp {
    pub async fn start() -> TestSmtp {
        let dir =
            std::env::temp_dir().join(format!("keel-test-mail-{}", uuid::Uuid::new_v4().simple()));
        let (addr, sink) = MailSink::start("127.0.0.1:0", &dir)
            .await
            .unwrap_or_else(|err| panic!("cannot start the test SMTP sink: {err}"));
        TestSmtp {
            addr,
            sink: Some(sink),
        }
    }

    /// Where to send mail (plain SMTP, no TLS, no authentication).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn dir(&self) -> &Path {
        self.handle().dir()
    }

    fn handle(&self) -> &MailSinkHandle {
        self.sink.as_ref().expect("the sink runs until drop")
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<StoredMessage> {
        let paths = self
            .handle()
            .list()
            .unwrap_or_else(|err| panic!("cannot list {}: {err}", self.dir().display()));
        paths
            .iter()
            .map(|path| {
                keel_mailsink::read(path)
                    .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
            })
            .collect()
    }

    /// The first message (oldest first) matching `predicate`, waiting up to 10 s for it.
    pub async fn wait_for(&self, predicate: impl Fn(&StoredMessage) -> bool) -> StoredMessage {
        self.wait_for_within(Duration::from_secs(10), predicate)
            .await
    }

    pub async fn wait_for_within(
        &self,
        timeout: Duration,
        predicate: impl Fn(&StoredMessage) -> bool,
    ) -> StoredMessage {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if let Some(found) = messages.iter().find(|message| predicate(message)) {
                return found.clone();
            }
            if tokio::time::Instant::now() >= deadline {
                let seen: Vec<_> = messages
                    .iter()
                    .map(|message| format!("to {:?}: {:?}", message.to, message.subject))
                    .collect();
                panic!("no matching mail within {timeout:?}; received: {seen:#?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The first message addressed (in `To` or the envelope) to `address`.
    pub async fn wait_for_mail_to(&self, address: &str) -> StoredMessage {
        self.wait_for(|message| {
            message.to.iter().any(|to| to.eq_ignore_ascii_case(address))
                || message
                    .envelope_to
                    .iter()
                    .any(|to| to.eq_ignore_ascii_case(address))
        })
        .await
    }
}

impl Drop for TestSmtp {
    fn drop(&mut self) {
        if let Some(sink) = self.sink.take() {
            let dir = sink.dir().to_path_buf();
            drop(sink);
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    use super::TestSmtp;

    #[tokio::test]
    async fn a_message_sent_over_a_socket_is_read_back() {
        let smtp = TestSmtp::start().await;
        let stream = tokio::net::TcpStream::connect(smtp.addr()).await.unwrap();
        let (read_half, mut writer) = stream.into_split();
        let mut reader = BufReader::new(read_half);
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        assert!(line.starts_with("220"));
        for command in [
            "HELO test\r\n",
            "MAIL FROM:<a@keel.test>\r\n",
            "RCPT TO:<Someone@Keel.Test>\r\n",
            "DATA\r\n",
        ] {
            writer.write_all(command.as_bytes()).await.unwrap();
            line.clear();
            reader.read_line(&mut line).await.unwrap();
            assert!(line.starts_with('2') || line.starts_with('3'), "{line}");
        }
        writer
            .write_all(b"To: someone@keel.test\r\nSubject: hello\r\n\r\nbody\r\n.\r\n")
            .await
            .unwrap();
        line.clear();
        reader.read_line(&mut line).await.unwrap();
        assert!(line.starts_with("250"), "{line}");
        let message = smtp.wait_for_mail_to("someone@keel.test").await;
        assert_eq!(message.subject.as_deref(), Some("hello"));
        let dir = smtp.dir().to_path_buf();
        drop(smtp);
        assert!(!dir.exists());
    }
}
