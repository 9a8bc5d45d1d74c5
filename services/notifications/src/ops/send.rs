//! Sending one email: who it goes to, in which language, with which link, decided at send time
//! from the owning services (an address or a language changed since the event counts; a secret
//! for the link is issued now and never stored).

use keel_kernel::Error;
use keel_kernel::jobs::JobTx;

use super::Deliverer;
use crate::domain::Locale;
use crate::events::interpret::{Link, To, units_until};
use crate::jobs::SendEmail;
use crate::render::RenderedEmail;
use crate::repo;

/// An email ready to go.
pub struct Outgoing {
    pub to: String,
    pub display_name: String,
    /// The recipient's user id, "" for an invitee without one.
    pub user_id: String,
    pub email: RenderedEmail,
}

impl Deliverer {
    /// Resolve and render the email of `content` for `to`.
    pub async fn prepare(
        &self,
        tx: &mut JobTx,
        send: &SendEmail,
        lines: &[String],
    ) -> Result<Outgoing, Error> {
        let (to, tenant, link) = (&send.to, send.tenant, &send.link);
        let accept_language = send.accept_language.as_str();
        let now = self.clock.now();
        let info = match tenant {
            Some(_) => Some(repo::tenants::get(tx.tenant()?).await?),
            None => None,
        };
        let default_locale = info
            .as_ref()
            .map(|i| i.default_locale.as_str())
            .unwrap_or("");
        let mut content = send.content.clone();
        if let Some(inviter) = content
            .args
            .iter()
            .find(|(name, _)| name == "inviter_id")
            .map(|(_, value)| value.clone())
        {
            let inviter = match inviter {
                crate::render::Arg::Text(id) => {
                    keel_kernel::UserId::parse_field("inviter_id", &id).ok()
                }
                crate::render::Arg::Number(_) => None,
            };
            let name = match inviter {
                Some(id) => self.peers.user(id).await.map(|u| u.display_name).ok(),
                None => None,
            };
            content = content.arg("inviter", name.unwrap_or_default());
        }
        let (mut address, display_name, user_id, user_locale) = match to {
            To::User(user) => {
                let recipient = self.peers.user(*user).await?;
                (
                    recipient.email,
                    recipient.display_name,
                    user.to_string(),
                    recipient.locale,
                )
            }
            To::Address(email) => (email.clone(), String::new(), String::new(), String::new()),
            To::TenantOwner => {
                return Err(Error::invalid("to", "an owner is resolved when routing"));
            }
        };
        let web = self.settings.web_url.trim_end_matches('/');
        let url = match link {
            Link::None => None,
            Link::Path(path) => Some(format!("{web}{path}")),
            Link::VerifyEmail { verification_id } => {
                let issued = self.peers.verification_token(verification_id).await?;
                // Identity's answer is authoritative: the address being verified.
                address = issued.email;
                if let Some(expires) = issued.expires_at {
                    content = content.arg(
                        "hours",
                        units_until(expires, now, chrono::Duration::hours(1)),
                    );
                }
                Some(format!(
                    "{web}/verify-email?token={}",
                    encode(&issued.token)
                ))
            }
            Link::Invitation { invitation_id } => {
                let tenant = tenant
                    .ok_or_else(|| Error::invalid("tenant_id", "an invitation needs a tenant"))?;
                let issued = self.peers.invitation_token(tenant, invitation_id).await?;
                address = issued.email;
                if let Some(expires) = issued.expires_at {
                    content =
                        content.arg("days", units_until(expires, now, chrono::Duration::days(1)));
                }
                Some(format!(
                    "{web}/invitations/accept?token={}",
                    encode(&issued.token)
                ))
            }
            Link::PasswordReset { reset_id } => {
                let issued = self.peers.password_reset_token(reset_id).await?;
                address = issued.email;
                if let Some(expires) = issued.expires_at {
                    content = content.arg(
                        "minutes",
                        units_until(expires, now, chrono::Duration::minutes(1)),
                    );
                }
                Some(format!(
                    "{web}/reset-password?token={}",
                    encode(&issued.token)
                ))
            }
        };
        let locale = Locale::choose(&user_locale, default_locale, accept_language);
        let content = content.arg(
            "name",
            if display_name.is_empty() {
                address.clone()
            } else {
                display_name.clone()
            },
        );
        let email = self.renderer.email(locale, &content, url.as_deref(), lines);
        Ok(Outgoing {
            to: address,
            display_name,
            user_id,
            email,
        })
    }
}

/// Percent-encode a token for a query string (tokens are URL-safe today; this keeps a future
/// format from breaking links).
fn encode(token: &str) -> String {
    token
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
