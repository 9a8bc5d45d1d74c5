//! Email over SMTP with lettre: one multipart/alternative message (plain text + HTML) per send,
//! to the configured relay. Plain SMTP: the relay is local (the mail sink in development, the
//! cluster's relay in production), which does the TLS to the outside world.

use std::time::Duration;

use keel_kernel::Error;
use lettre::message::{Mailbox, MultiPart, header};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::render::RenderedEmail;
use crate::settings::SmtpSettings;

#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The domain of `Message-ID`s (the `From` address's).
    domain: String,
}

impl Mailer {
    pub fn new(settings: &SmtpSettings) -> Result<Mailer, Error> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|err| Error::internal(anyhow::anyhow!("config key `app.smtp.from`: {err}")))?;
        let domain = from.email.domain().to_owned();
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .timeout(Some(Duration::from_millis(settings.timeout_ms)))
            .build();
        Ok(Mailer {
            transport,
            from,
            domain,
        })
    }

    /// Send `email` to `to`. `key` identifies this send across retries: it becomes the
    /// `Message-ID`, so a receiver can drop a copy a retry after a lost acknowledgement re-sent.
    /// An unreachable relay is UNAVAILABLE (the job retries); a refused address is VALIDATION.
    pub async fn send(
        &self,
        to: &str,
        display_name: &str,
        email: &RenderedEmail,
        key: &str,
    ) -> Result<(), Error> {
        let address = to
            .parse()
            .map_err(|err| Error::invalid("email", format!("is not an address: {err}")))?;
        let to = Mailbox::new(
            (!display_name.is_empty()).then(|| display_name.to_owned()),
            address,
        );
        let message_id: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '.'
                }
            })
            .collect();
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .message_id(Some(format!("<{message_id}@{}>", self.domain)))
            .header(ContentLanguage(email.locale.tag().to_owned()))
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(|err| Error::internal(anyhow::anyhow!("building an email: {err}")))?;
        self.transport.send(message).await.map_err(|err| {
            if err.is_permanent() {
                Error::invalid("email", format!("the mail relay refused it: {err}"))
            } else {
                Error::unavailable("the mail relay is unavailable").with_cause(err)
            }
        })?;
        Ok(())
    }
}

/// The `Content-Language` header (RFC 3282): the language the message was written in.
#[derive(Debug, Clone)]
struct ContentLanguage(String);

impl header::Header for ContentLanguage {
    fn name() -> header::HeaderName {
        header::HeaderName::new_from_ascii_str("Content-Language")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ContentLanguage(s.to_owned()))
    }

    fn display(&self) -> header::HeaderValue {
        header::HeaderValue::new(Self::name(), self.0.clone())
    }
}
