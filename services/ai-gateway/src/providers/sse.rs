//! Server-sent events over a byte stream: `event:` and `data:` lines, frames ended by a blank
//! line (`\n` or `\r\n`). Just enough for the providers' streams.

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};

use super::ProviderError;

/// One SSE frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub event: String,
    pub data: String,
}

struct Parser {
    buffer: Vec<u8>,
    event: String,
    data: Vec<String>,
}

impl Parser {
    /// The frames completed by `chunk`.
    fn push(&mut self, chunk: &[u8]) -> Result<Vec<Frame>, ProviderError> {
        self.buffer.extend_from_slice(chunk);
        let mut frames = Vec::new();
        while let Some(newline) = self.buffer.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buffer.drain(..=newline).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8(line)
                .map_err(|_| ProviderError::Malformed("a line is not UTF-8".into()))?;
            if line.is_empty() {
                if !self.data.is_empty() || !self.event.is_empty() {
                    frames.push(Frame {
                        event: std::mem::take(&mut self.event),
                        data: std::mem::take(&mut self.data).join("\n"),
                    });
                }
            } else if let Some(value) = line.strip_prefix("data:") {
                self.data
                    .push(value.strip_prefix(' ').unwrap_or(value).to_owned());
            } else if let Some(value) = line.strip_prefix("event:") {
                self.event = value.trim().to_owned();
            }
            // `id:`, `retry:` and `:` comments carry nothing the gateway needs.
        }
        Ok(frames)
    }
}

/// The frames of an SSE body. A body that ends in the middle of a frame ends the stream with an
/// error (a cut connection is not a finished answer).
pub fn frames(
    body: BoxStream<'static, Result<Bytes, reqwest::Error>>,
) -> BoxStream<'static, Result<Frame, ProviderError>> {
    let parser = Parser {
        buffer: Vec::new(),
        event: String::new(),
        data: Vec::new(),
    };
    futures::stream::unfold(
        (body, parser, std::collections::VecDeque::new(), false),
        |(mut body, mut parser, mut ready, done)| async move {
            loop {
                if let Some(frame) = ready.pop_front() {
                    return Some((Ok(frame), (body, parser, ready, done)));
                }
                if done {
                    return None;
                }
                match body.next().await {
                    Some(Ok(chunk)) => match parser.push(&chunk) {
                        Ok(frames) => ready.extend(frames),
                        Err(err) => return Some((Err(err), (body, parser, ready, true))),
                    },
                    Some(Err(err)) => {
                        let err = ProviderError::Stream(err.to_string());
                        return Some((Err(err), (body, parser, ready, true)));
                    }
                    None => {
                        if parser.buffer.iter().any(|b| !b.is_ascii_whitespace())
                            || !parser.data.is_empty()
                        {
                            let err = ProviderError::Stream("the stream ended mid-frame".into());
                            return Some((Err(err), (body, parser, ready, true)));
                        }
                        return None;
                    }
                }
            }
        },
    )
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_chunks_are_reassembled() {
        let mut parser = Parser {
            buffer: Vec::new(),
            event: String::new(),
            data: Vec::new(),
        };
        assert!(parser.push(b"event: ping\r\nda").expect("ok").is_empty());
        let frames = parser
            .push(b"ta: {\"a\":1}\r\n\r\ndata: [DONE]\n\n")
            .expect("ok");
        assert_eq!(
            frames,
            vec![
                Frame {
                    event: "ping".into(),
                    data: "{\"a\":1}".into()
                },
                Frame {
                    event: String::new(),
                    data: "[DONE]".into()
                }
            ]
        );
    }
}
