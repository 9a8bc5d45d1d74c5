//! One SMTP conversation (RFC 5321), from the greeting to `QUIT`.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::broadcast;

use crate::MailSinkConfig;
use crate::store::Store;

/// What every session of one server shares.
pub(crate) struct Shared {
    pub(crate) config: MailSinkConfig,
    pub(crate) store: Store,
    pub(crate) stored_tx: broadcast::Sender<PathBuf>,
}

/// RFC 5321 §4.5.3.1.4 says 512 octets; clients with long parameters exceed it, so allow more.
const MAX_COMMAND_LINE: usize = 4096;

/// The mail transaction in progress (between `MAIL FROM` and the end of `DATA`).
#[derive(Default)]
struct Transaction {
    from: Option<String>,
    recipients: Vec<String>,
}

enum Line {
    Complete(Vec<u8>),
    /// Longer than the limit; the rest of it was read and thrown away.
    TooLong,
    Eof,
}

/// Reads one line, without its `\r\n` (or bare `\n`), keeping at most `limit` bytes in memory.
async fn read_line(reader: &mut (impl AsyncBufRead + Unpin), limit: usize) -> io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buffer = reader.fill_buf().await?;
        if buffer.is_empty() {
            // A peer that hangs up mid-line sent no command.
            return Ok(Line::Eof);
        }
        let (chunk, found_newline) = match buffer.iter().position(|&byte| byte == b'\n') {
            Some(position) => (&buffer[..position], true),
            None => (buffer, false),
        };
        if !too_long {
            if line.len() + chunk.len() > limit {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let consumed = chunk.len() + usize::from(found_newline);
        reader.consume(consumed);
        if found_newline {
            if too_long {
                return Ok(Line::TooLong);
            }
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Line::Complete(line));
        }
    }
}

async fn reply(writer: &mut (impl AsyncWriteExt + Unpin), text: &str) -> io::Result<()> {
    writer.write_all(text.as_bytes()).await?;
    writer.write_all(b"\r\n").await?;
    writer.flush().await
}

/// `<address>` followed by optional ESMTP parameters, as in `MAIL FROM:<a@b> SIZE=10`.
fn parse_path(argument: &str) -> Option<(String, Vec<String>)> {
    let argument = argument.trim_start();
    let rest = argument.strip_prefix('<')?;
    let end = rest.find('>')?;
    let address = rest[..end].to_owned();
    let parameters = rest[end + 1..]
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    Some((address, parameters))
}

/// Strips a case-insensitive keyword such as `FROM:` from the start of `argument`.
fn strip_keyword<'a>(argument: &'a str, keyword: &str) -> Option<&'a str> {
    let head = argument.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| &argument[keyword.len()..])
}

pub(crate) async fn serve(stream: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    let config = &shared.config;
    let (read_half, mut writer) = stream.into_split();
    let mut reader = BufReader::new(read_half);
    reply(
        &mut writer,
        &format!("220 {} ESMTP keel-mailsink ready", config.hostname),
    )
    .await?;
    let mut greeted = false;
    let mut transaction = Transaction::default();
    loop {
        let line = match tokio::time::timeout(
            config.idle_timeout,
            read_line(&mut reader, MAX_COMMAND_LINE),
        )
        .await
        {
            Err(_) => {
                reply(&mut writer, "421 4.4.2 idle too long, closing connection").await?;
                return Ok(());
            }
            Ok(line) => line?,
        };
        let line = match line {
            Line::Eof => return Ok(()),
            Line::TooLong => {
                reply(&mut writer, "500 5.5.6 command line too long").await?;
                continue;
            }
            Line::Complete(line) => String::from_utf8_lossy(&line).into_owned(),
        };
        let (verb, argument) = match line.split_once(' ') {
            Some((verb, argument)) => (verb.to_ascii_uppercase(), argument.trim()),
            None => (line.trim().to_ascii_uppercase(), ""),
        };
        match verb.as_str() {
            "EHLO" | "HELO" if argument.is_empty() => {
                reply(&mut writer, "501 5.5.4 a domain or address is required").await?;
            }
            "EHLO" => {
                greeted = true;
                transaction = Transaction::default();
                let greeting = format!(
                    "250-{} greets {argument}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-SIZE {}\r\n250 HELP",
                    config.hostname, config.max_message_bytes
                );
                reply(&mut writer, &greeting).await?;
            }
            "HELO" => {
                greeted = true;
                transaction = Transaction::default();
                reply(&mut writer, &format!("250 {}", config.hostname)).await?;
            }
            "MAIL" => {
                let response = start_transaction(greeted, &mut transaction, argument, config);
                reply(&mut writer, &response).await?;
            }
            "RCPT" => {
                let response = add_recipient(&mut transaction, argument, config);
                reply(&mut writer, &response).await?;
            }
            "DATA" => {
                if !argument.is_empty() {
                    reply(&mut writer, "501 5.5.4 DATA takes no argument").await?;
                    continue;
                }
                if transaction.from.is_none() {
                    reply(&mut writer, "503 5.5.1 MAIL first").await?;
                    continue;
                }
                if transaction.recipients.is_empty() {
                    reply(&mut writer, "503 5.5.1 RCPT first").await?;
                    continue;
                }
                reply(&mut writer, "354 end data with <CR><LF>.<CR><LF>").await?;
                let Some(data) = receive_data(&mut reader, config).await? else {
                    return Ok(()); // the peer hung up or fell silent mid-message
                };
                let finished = std::mem::take(&mut transaction);
                let response = match data {
                    Data::TooLarge => format!(
                        "552 5.3.4 message exceeds the maximum size of {} bytes",
                        config.max_message_bytes
                    ),
                    Data::Complete(data) => {
                        let from = finished.from.unwrap_or_default();
                        match shared.store.save(&from, &finished.recipients, &data).await {
                            Ok(path) => {
                                let name = path
                                    .file_name()
                                    .map(|name| name.to_string_lossy().into_owned())
                                    .unwrap_or_default();
                                // Nobody listening is fine: the file is the record.
                                let _ = shared.stored_tx.send(path);
                                format!("250 2.0.0 OK queued as {name}")
                            }
                            Err(err) => {
                                tracing::error!(error = %err, "cannot store a received message");
                                "451 4.3.0 cannot store the message".to_owned()
                            }
                        }
                    }
                };
                reply(&mut writer, &response).await?;
            }
            "RSET" => {
                transaction = Transaction::default();
                reply(&mut writer, "250 2.0.0 OK").await?;
            }
            "NOOP" => reply(&mut writer, "250 2.0.0 OK").await?,
            "VRFY" => {
                reply(&mut writer, "252 2.1.5 cannot verify, but will accept").await?;
            }
            "HELP" => {
                reply(
                    &mut writer,
                    "214 2.0.0 EHLO HELO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT",
                )
                .await?;
            }
            "QUIT" => {
                reply(&mut writer, "221 2.0.0 bye").await?;
                return Ok(());
            }
            "STARTTLS" | "AUTH" | "BDAT" | "EXPN" | "TURN" => {
                reply(&mut writer, "502 5.5.1 command not implemented").await?;
            }
            _ => reply(&mut writer, "500 5.5.2 command not recognized").await?,
        }
    }
}

fn start_transaction(
    greeted: bool,
    transaction: &mut Transaction,
    argument: &str,
    config: &MailSinkConfig,
) -> String {
    if !greeted {
        return "503 5.5.1 EHLO or HELO first".to_owned();
    }
    if transaction.from.is_some() {
        return "503 5.5.1 a transaction is already in progress (RSET first)".to_owned();
    }
    let Some((from, parameters)) = strip_keyword(argument, "FROM:").and_then(parse_path) else {
        return "501 5.5.4 syntax: MAIL FROM:<address>".to_owned();
    };
    for parameter in &parameters {
        let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        match name.to_ascii_uppercase().as_str() {
            "SIZE" => match value.parse::<usize>() {
                Ok(size) if size > config.max_message_bytes => {
                    return format!(
                        "552 5.3.4 message size exceeds the maximum of {} bytes",
                        config.max_message_bytes
                    );
                }
                Ok(_) => {}
                Err(_) => return "501 5.5.4 SIZE must be a number".to_owned(),
            },
            "BODY" if ["7BIT", "8BITMIME"].contains(&value.to_ascii_uppercase().as_str()) => {}
            "SMTPUTF8" if value.is_empty() => {}
            _ => return format!("555 5.5.4 unsupported parameter {parameter}"),
        }
    }
    transaction.from = Some(from);
    "250 2.1.0 OK".to_owned()
}

fn add_recipient(transaction: &mut Transaction, argument: &str, config: &MailSinkConfig) -> String {
    if transaction.from.is_none() {
        return "503 5.5.1 MAIL first".to_owned();
    }
    let Some((recipient, _parameters)) = strip_keyword(argument, "TO:").and_then(parse_path) else {
        return "501 5.5.4 syntax: RCPT TO:<address>".to_owned();
    };
    if recipient.is_empty() {
        return "501 5.1.3 an empty recipient is not an address".to_owned();
    }
    if transaction.recipients.len() >= config.max_recipients {
        return "452 4.5.3 too many recipients".to_owned();
    }
    transaction.recipients.push(recipient);
    "250 2.1.5 OK".to_owned()
}

enum Data {
    Complete(Vec<u8>),
    TooLarge,
}

/// Reads the message up to the line holding a single dot, undoing dot-stuffing
/// (RFC 5321 §4.5.2). Past the size limit it keeps reading, to stay in step with the client, but
/// keeps nothing. `None` when the client disconnects or idles out first.
async fn receive_data(
    reader: &mut (impl AsyncBufRead + Unpin),
    config: &MailSinkConfig,
) -> io::Result<Option<Data>> {
    let mut data = Vec::new();
    let mut too_large = false;
    loop {
        let line = match tokio::time::timeout(
            config.idle_timeout,
            read_line(reader, config.max_message_bytes + 2),
        )
        .await
        {
            Err(_) => return Ok(None),
            Ok(line) => line?,
        };
        let line = match line {
            Line::Eof => return Ok(None),
            Line::TooLong => {
                too_large = true;
                continue;
            }
            Line::Complete(line) => line,
        };
        if line == b"." {
            break;
        }
        let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
        if too_large || data.len() + unstuffed.len() + 2 > config.max_message_bytes {
            too_large = true;
            data = Vec::new();
            continue;
        }
        data.extend_from_slice(unstuffed);
        data.extend_from_slice(b"\r\n");
    }
    Ok(Some(if too_large {
        Data::TooLarge
    } else {
        Data::Complete(data)
    }))
}
