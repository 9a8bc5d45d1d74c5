//! The sink over real TCP: lettre as the client, and a raw socket where the exact bytes matter.
#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use keel_mailsink::{MailSink, MailSinkConfig, MailSinkHandle};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn fresh_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!("keel-mailsink-test-{}-{nanos}", std::process::id()))
}

async fn start(config: MailSinkConfig) -> (SocketAddr, MailSinkHandle) {
    MailSink::start_with("127.0.0.1:0", fresh_dir(), config)
        .await
        .unwrap()
}

fn mailer(addr: SocketAddr) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
        .port(addr.port())
        .timeout(Some(Duration::from_secs(10)))
        .build()
}

/// A client speaking SMTP line by line, so each reply can be checked.
struct RawClient {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl RawClient {
    async fn connect(addr: SocketAddr) -> RawClient {
        let (read_half, writer) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut client = RawClient {
            reader: BufReader::new(read_half),
            writer,
        };
        assert!(client.response().await.starts_with("220 "));
        client
    }

    /// One reply, joining the lines of a multi-line one.
    async fn response(&mut self) -> String {
        let mut full = String::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).await.unwrap();
            assert!(!line.is_empty(), "server closed the connection");
            full.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return full;
            }
        }
    }

    async fn send(&mut self, bytes: &str) {
        self.writer.write_all(bytes.as_bytes()).await.unwrap();
    }

    async fn command(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r\n")).await;
        self.response().await
    }
}

#[tokio::test]
async fn a_message_sent_with_lettre_is_stored_and_parses_back() {
    let (addr, sink) = start(MailSinkConfig::default()).await;
    let message = Message::builder()
        .from("Keel <no-reply@keel.test>".parse::<Mailbox>().unwrap())
        .to("박지민 <jimin@example.test>".parse::<Mailbox>().unwrap())
        .bcc("audit@example.test".parse::<Mailbox>().unwrap())
        .subject("이메일 주소를 확인하세요")
        .multipart(MultiPart::alternative_plain_html(
            "Verify: https://keel.test/verify?t=abc\n".to_owned(),
            "<p dir=\"ltr\">Verify: <a href=\"https://keel.test/verify?t=abc\">here</a></p>"
                .to_owned(),
        ))
        .unwrap();
    mailer(addr).send(message).await.unwrap();

    let paths = sink.list().unwrap();
    assert_eq!(paths.len(), 1, "{paths:?}");
    let stored = keel_mailsink::read(&paths[0]).unwrap();
    assert_eq!(stored.to, vec!["jimin@example.test"]);
    assert_eq!(stored.from, vec!["no-reply@keel.test"]);
    assert_eq!(stored.subject.as_deref(), Some("이메일 주소를 확인하세요"));
    assert_eq!(stored.envelope_from, "no-reply@keel.test");
    let mut envelope_to = stored.envelope_to.clone();
    envelope_to.sort();
    assert_eq!(
        envelope_to,
        vec!["audit@example.test", "jimin@example.test"]
    );
    assert!(
        stored
            .text
            .as_deref()
            .unwrap()
            .contains("https://keel.test/verify?t=abc")
    );
    assert!(
        stored
            .html
            .as_deref()
            .unwrap()
            .contains("<a href=\"https://keel.test/verify?t=abc\">")
    );
    // The Bcc header itself must not travel with the message.
    assert!(stored.header("Bcc").is_none());
    // No temporary file is left beside it.
    let leftovers: Vec<_> = std::fs::read_dir(sink.dir()).unwrap().collect();
    assert_eq!(leftovers.len(), 1);
}

#[tokio::test]
async fn files_sort_in_arrival_order_and_subscribers_hear_of_each() {
    let (addr, sink) = start(MailSinkConfig::default()).await;
    let mut stored = sink.subscribe();
    for n in 0..5 {
        let message = Message::builder()
            .from("a@keel.test".parse::<Mailbox>().unwrap())
            .to("b@keel.test".parse::<Mailbox>().unwrap())
            .subject(format!("message {n}"))
            .body(format!("body {n}\n"))
            .unwrap();
        mailer(addr).send(message).await.unwrap();
        let announced = tokio::time::timeout(Duration::from_secs(5), stored.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(announced.exists());
    }
    let subjects: Vec<_> = sink
        .list()
        .unwrap()
        .iter()
        .map(|path| keel_mailsink::read(path).unwrap().subject.unwrap())
        .collect();
    assert_eq!(
        subjects,
        (0..5).map(|n| format!("message {n}")).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn dot_stuffed_lines_are_unstuffed() {
    let (addr, sink) = start(MailSinkConfig::default()).await;
    let mut client = RawClient::connect(addr).await;
    let ehlo = client.command("EHLO client.test").await;
    for extension in ["8BITMIME", "SMTPUTF8", "SIZE "] {
        assert!(ehlo.contains(extension), "{ehlo}");
    }
    assert!(
        client
            .command("MAIL FROM:<a@keel.test> BODY=8BITMIME SMTPUTF8")
            .await
            .starts_with("250")
    );
    assert!(
        client
            .command("RCPT TO:<b@keel.test>")
            .await
            .starts_with("250")
    );
    assert!(client.command("DATA").await.starts_with("354"));
    client
        .send("Subject: dots\r\nTo: b@keel.test\r\n\r\n..one leading dot\r\n...two\r\n.\r\n")
        .await;
    let queued = client.response().await;
    assert!(queued.starts_with("250"), "{queued}");
    assert!(client.command("QUIT").await.starts_with("221"));

    let stored = keel_mailsink::read(&sink.list().unwrap()[0]).unwrap();
    assert_eq!(
        stored.text.as_deref(),
        Some(".one leading dot\r\n..two\r\n")
    );
}

#[tokio::test]
async fn an_oversized_message_is_refused_with_552_and_the_session_goes_on() {
    let config = MailSinkConfig {
        max_message_bytes: 1024,
        ..MailSinkConfig::default()
    };
    let (addr, sink) = start(config).await;
    let mut client = RawClient::connect(addr).await;
    client.command("EHLO client.test").await;

    // Declared too large up front.
    let declared = client.command("MAIL FROM:<a@keel.test> SIZE=4096").await;
    assert!(declared.starts_with("552"), "{declared}");

    // Undeclared, discovered while reading DATA.
    assert!(
        client
            .command("MAIL FROM:<a@keel.test>")
            .await
            .starts_with("250")
    );
    assert!(
        client
            .command("RCPT TO:<b@keel.test>")
            .await
            .starts_with("250")
    );
    assert!(client.command("DATA").await.starts_with("354"));
    let big_line = "x".repeat(100);
    let mut data = String::from("Subject: big\r\n\r\n");
    for _ in 0..30 {
        data.push_str(&big_line);
        data.push_str("\r\n");
    }
    data.push_str(".\r\n");
    client.send(&data).await;
    let refused = client.response().await;
    assert!(refused.starts_with("552"), "{refused}");
    assert!(sink.list().unwrap().is_empty());

    // The transaction was reset; a small message in the same session is accepted.
    assert!(
        client
            .command("RCPT TO:<b@keel.test>")
            .await
            .starts_with("503")
    );
    assert!(
        client
            .command("MAIL FROM:<a@keel.test>")
            .await
            .starts_with("250")
    );
    assert!(
        client
            .command("RCPT TO:<b@keel.test>")
            .await
            .starts_with("250")
    );
    assert!(client.command("DATA").await.starts_with("354"));
    client.send("Subject: small\r\n\r\nfits\r\n.\r\n").await;
    assert!(client.response().await.starts_with("250"));
    assert_eq!(sink.list().unwrap().len(), 1);
}

#[tokio::test]
async fn commands_out_of_order_or_malformed_get_clear_errors() {
    let (addr, sink) = start(MailSinkConfig::default()).await;
    let mut client = RawClient::connect(addr).await;
    assert!(
        client
            .command("MAIL FROM:<a@keel.test>")
            .await
            .starts_with("503")
    );
    assert!(client.command("EHLO").await.starts_with("501"));
    assert!(client.command("HELO client.test").await.starts_with("250"));
    assert!(
        client
            .command("RCPT TO:<b@keel.test>")
            .await
            .starts_with("503")
    );
    assert!(
        client
            .command("MAIL FROM:a@keel.test")
            .await
            .starts_with("501")
    );
    assert!(
        client
            .command("MAIL FROM:<a@keel.test> FROBNICATE=1")
            .await
            .starts_with("555")
    );
    assert!(
        client
            .command("MAIL FROM:<a@keel.test>")
            .await
            .starts_with("250")
    );
    assert!(
        client
            .command("MAIL FROM:<a@keel.test>")
            .await
            .starts_with("503")
    );
    assert!(client.command("DATA").await.starts_with("503"));
    assert!(client.command("RCPT TO:<>").await.starts_with("501"));
    assert!(client.command("NOOP").await.starts_with("250"));
    assert!(client.command("RSET").await.starts_with("250"));
    assert!(
        client
            .command("RCPT TO:<b@keel.test>")
            .await
            .starts_with("503")
    );
    assert!(client.command("FROB").await.starts_with("500"));
    let long = format!("NOOP {}", "y".repeat(10_000));
    assert!(client.command(&long).await.starts_with("500"));
    assert!(
        client.command("NOOP").await.starts_with("250"),
        "still in step after a long line"
    );
    assert!(client.command("QUIT").await.starts_with("221"));
    assert!(sink.list().unwrap().is_empty());
}
