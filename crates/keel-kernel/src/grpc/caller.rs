//! The verified caller of one request and the request's own facts (id, client address, agent).

use crate::actor::Actor;
use crate::auth::Claims;
use crate::error::Error;
use crate::ids::{TenantId, UserId};

/// Facts about a request that do not depend on who sent it: what public methods (login,
/// register) have to go on, and what every audit row records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMeta {
    /// The request id the server's first layer assigned (or accepted from the gateway); also the
    /// correlation id of the events the request causes.
    pub request_id: String,
    /// The client's address as the edge gateway resolved it (see [`RequestMeta::of`]), else the
    /// peer address.
    pub client_ip: String,
    pub user_agent: String,
    /// The client's `Idempotency-Key` header, forwarded by the edge gateway
    /// ([`crate::idempotency`]); a request's own `request_id` field takes precedence.
    pub idempotency_key: Option<String>,
    /// The language the client prefers most, from its `Accept-Language` (forwarded by the edge
    /// gateway): the highest-weighted well-formed BCP 47 tag, in canonical case (`zh-Hant-TW`).
    /// `None` without the header or without a usable tag in it. What a person without a stored
    /// preference is written to in, e.g. the invitee of an invitation.
    pub preferred_locale: Option<String>,
}

const MAX_USER_AGENT_LEN: usize = 256;
/// Longer `Accept-Language` values are not parsed (no browser sends one this long).
const MAX_ACCEPT_LANGUAGE_LEN: usize = 1024;
/// Longer tags are refused: BCP 47 tags in real use fit easily (RFC 5646 asks for at least 35).
const MAX_LOCALE_LEN: usize = 35;

impl RequestMeta {
    /// The metadata carrying the client's address as the edge gateway resolved it. The gateway
    /// sets it on every call and strips it from clients; nothing else a client sends
    /// (`X-Forwarded-For`, `X-Real-IP`) is believed, since the client writes those.
    pub const CLIENT_IP_HEADER: &'static str = "x-keel-client-ip";

    pub fn of<T>(request: &tonic::Request<T>) -> RequestMeta {
        let header = |name: &str| {
            request
                .metadata()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::trim)
                .filter(|value| !value.is_empty())
        };
        // Parsed, so whatever reaches audit rows and lockout keys is an address and nothing else.
        let client_ip = header(Self::CLIENT_IP_HEADER)
            .and_then(|value| value.parse::<std::net::IpAddr>().ok())
            .or_else(|| request.remote_addr().map(|addr| addr.ip()))
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        RequestMeta {
            request_id: crate::server::request_id(request)
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default(),
            client_ip,
            user_agent: header("user-agent")
                .map(|agent| agent.chars().take(MAX_USER_AGENT_LEN).collect())
                .unwrap_or_default(),
            idempotency_key: header(crate::idempotency::IDEMPOTENCY_KEY_HEADER).map(str::to_owned),
            preferred_locale: header("accept-language").and_then(RequestMeta::preferred_locale_of),
        }
    }

    /// The most preferred well-formed language tag of an `Accept-Language` value (RFC 9110
    /// 12.5.4): the highest `q` wins, ties go to the earlier entry, `*` and `q=0` are skipped.
    pub fn preferred_locale_of(accept_language: &str) -> Option<String> {
        if accept_language.len() > MAX_ACCEPT_LANGUAGE_LEN {
            return None;
        }
        let mut best: Option<(u16, String)> = None;
        for entry in accept_language.split(',') {
            let mut parts = entry.split(';');
            let tag = parts.next().unwrap_or_default().trim();
            let mut weight = 1000u16;
            for param in parts {
                let Some((name, value)) = param.split_once('=') else {
                    continue;
                };
                if name.trim().eq_ignore_ascii_case("q") {
                    weight = parse_qvalue(value.trim()).unwrap_or(0);
                }
            }
            if weight == 0 || tag == "*" {
                continue;
            }
            let Some(tag) = RequestMeta::canonical_locale(tag) else {
                continue;
            };
            if best.as_ref().is_none_or(|(top, _)| weight > *top) {
                best = Some((weight, tag));
            }
        }
        best.map(|(_, tag)| tag)
    }

    /// `tag` in canonical case if it is a well-formed BCP 47 language tag (RFC 5646 2.1:
    /// language, extlangs, script, region, variants, extensions, private use), else `None`.
    /// Canonical case: language lowercase, script titlecase, region uppercase (`zh-hant-tw` ->
    /// `zh-Hant-TW`). Private-use-only and grandfathered tags are refused.
    pub fn canonical_locale(tag: &str) -> Option<String> {
        if tag.is_empty() || tag.len() > MAX_LOCALE_LEN {
            return None;
        }
        let subtags: Vec<&str> = tag.split(['-', '_']).collect();
        if subtags
            .iter()
            .any(|s| s.is_empty() || s.len() > 8 || !s.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return None;
        }
        let alpha = |s: &str| s.chars().all(|c| c.is_ascii_alphabetic());
        let digit = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        let mut out: Vec<String> = Vec::with_capacity(subtags.len());
        let mut rest = subtags.iter().copied().peekable();
        // language: 2-3 letters (optionally with up to three 3-letter extlangs), or 5-8 letters
        let language = rest.next()?;
        if !alpha(language) || !matches!(language.len(), 2 | 3 | 5..=8) {
            return None;
        }
        out.push(language.to_ascii_lowercase());
        if language.len() <= 3 {
            for _ in 0..3 {
                match rest.peek() {
                    Some(s) if s.len() == 3 && alpha(s) => {
                        out.push(s.to_ascii_lowercase());
                        rest.next();
                    }
                    _ => break,
                }
            }
        }
        if let Some(script) = rest.peek().filter(|s| s.len() == 4 && alpha(s)) {
            let mut chars = script.chars();
            let first = chars.next().unwrap_or_default().to_ascii_uppercase();
            out.push(
                std::iter::once(first)
                    .chain(chars.map(|c| c.to_ascii_lowercase()))
                    .collect(),
            );
            rest.next();
        }
        if let Some(region) = rest
            .peek()
            .filter(|s| (s.len() == 2 && alpha(s)) || (s.len() == 3 && digit(s)))
        {
            out.push(region.to_ascii_uppercase());
            rest.next();
        }
        // variants: 5-8 alphanumerics, or a digit and three alphanumerics
        while let Some(variant) = rest.peek().filter(|s| {
            (5..=8).contains(&s.len())
                || (s.len() == 4 && s.starts_with(|c: char| c.is_ascii_digit()))
        }) {
            out.push(variant.to_ascii_lowercase());
            rest.next();
        }
        // extensions (`u-ca-buddhist`) and private use (`x-foo`): a singleton, then 2-8 (1-8
        // for private use) alphanumerics each, at least one
        while let Some(singleton) = rest.next() {
            if singleton.len() != 1 {
                return None;
            }
            let private = singleton.eq_ignore_ascii_case("x");
            out.push(singleton.to_ascii_lowercase());
            let mut count = 0;
            while let Some(part) = rest.peek() {
                if part.len() == 1 && !private {
                    break;
                }
                if !private && part.len() < 2 {
                    return None;
                }
                out.push(part.to_ascii_lowercase());
                rest.next();
                count += 1;
            }
            if count == 0 {
                return None;
            }
        }
        Some(out.join("-"))
    }
}

/// An HTTP qvalue (`0`, `0.5`, `1.000`) in thousandths; `None` when malformed.
fn parse_qvalue(value: &str) -> Option<u16> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let thousandths: u16 = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The verified caller of one request: the token's claims (never a client-supplied header) and
/// the request's facts. Built once at the top of a handler; every check goes through it.
///
/// Two kinds of rights meet here:
/// - tenant rights, on a tenant-scoped token (`tid`) whose tenant must be the one the request
///   names ([`Caller::tenant`], [`Caller::tenant_with`]);
/// - platform rights (approving tenants, reading any tenant), which count only on a token scoped
///   to no tenant ([`Caller::platform`]). A tenant owner's token carries `*` for its own tenant;
///   without this rule that wildcard would grant platform rights to every owner.
#[derive(Debug, Clone)]
pub struct Caller {
    pub claims: Claims,
    pub meta: RequestMeta,
}

impl Caller {
    /// The caller of `request`, or AUTHN when the auth layer put no verified claims on it.
    pub fn from_request<T>(request: &tonic::Request<T>) -> Result<Caller, Error> {
        Ok(Caller {
            claims: crate::auth::claims(request)?.clone(),
            meta: RequestMeta::of(request),
        })
    }

    /// The calling user; API keys and services act for no user (AUTHZ).
    pub fn user(&self) -> Result<UserId, Error> {
        self.claims.user_id()
    }

    /// Who is acting, for audit rows and event envelopes.
    pub fn actor(&self) -> Actor {
        Actor::of(&self.claims)
    }

    /// The request id, used as the correlation id of the events this request causes.
    pub fn request_id(&self) -> &str {
        &self.meta.request_id
    }

    /// AUTHZ naming the permission unless the token grants it.
    pub fn require(&self, permission: &str) -> Result<(), Error> {
        self.claims.require(permission)
    }

    /// The tenant this request may act on: the token's, which must be the one the request names.
    /// The tenant always comes from the verified token; the request field only has to agree.
    pub fn tenant(&self, requested: TenantId) -> Result<TenantId, Error> {
        let tenant = self.claims.tenant()?;
        if tenant != requested {
            return Err(Error::forbidden(
                "the token is scoped to another tenant than the request's tenant_id",
            ));
        }
        Ok(tenant)
    }

    /// [`Self::tenant`] for a request field still in its wire form (parsed, naming `field`).
    pub fn tenant_field(&self, field: &str, requested: &str) -> Result<TenantId, Error> {
        self.tenant(TenantId::parse_field(field, requested)?)
    }

    /// [`Self::tenant`], then the tenant permission `permission`.
    pub fn tenant_with(&self, requested: TenantId, permission: &str) -> Result<TenantId, Error> {
        let tenant = self.tenant(requested)?;
        self.claims.require(permission)?;
        Ok(tenant)
    }

    /// Whether this is a platform principal holding `permission` (a token scoped to no tenant).
    pub fn is_platform(&self, permission: &str) -> bool {
        self.claims.tid.is_none() && self.claims.has_permission(permission)
    }

    /// AUTHZ unless this is a platform principal holding `permission`.
    pub fn platform(&self, permission: &str) -> Result<(), Error> {
        if self.is_platform(permission) {
            Ok(())
        } else if self.claims.tid.is_some() {
            Err(Error::forbidden(format!(
                "{permission} is a platform permission; it needs a token not scoped to a tenant"
            )))
        } else {
            Err(Error::forbidden(format!("missing permission {permission}")))
        }
    }

    /// The tenant a read may see: the token's own tenant, or any tenant for a platform principal
    /// holding `permission`.
    pub fn tenant_or_platform(
        &self,
        requested: TenantId,
        permission: &str,
    ) -> Result<TenantId, Error> {
        if self.is_platform(permission) {
            return Ok(requested);
        }
        self.tenant(requested)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&'static str, &'static str)]) -> tonic::Request<()> {
        let mut request = tonic::Request::new(());
        for (name, value) in headers {
            request.metadata_mut().insert(*name, value.parse().unwrap());
        }
        request
    }

    #[test]
    fn a_client_cannot_claim_an_address_with_x_forwarded_for_or_x_real_ip() {
        let meta = RequestMeta::of(&request(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-real-ip", "5.6.7.8"),
        ]));
        assert_eq!(
            meta.client_ip, "",
            "no peer in a unit test, and no header believed"
        );
    }

    #[test]
    fn the_gateways_resolved_address_is_the_client_ip() {
        let meta = RequestMeta::of(&request(&[
            ("x-forwarded-for", "1.2.3.4"),
            (RequestMeta::CLIENT_IP_HEADER, "203.0.113.9"),
        ]));
        assert_eq!(meta.client_ip, "203.0.113.9");
    }

    #[test]
    fn the_preferred_locale_is_the_highest_weighted_well_formed_tag() {
        let best = RequestMeta::preferred_locale_of;
        assert_eq!(best("ar").as_deref(), Some("ar"));
        assert_eq!(best("en-US,en;q=0.9").as_deref(), Some("en-US"));
        assert_eq!(
            best("en;q=0.5, zh-hant-tw;q=0.8, ko;q=0.7").as_deref(),
            Some("zh-Hant-TW")
        );
        assert_eq!(best("*, ko;q=0.1").as_deref(), Some("ko"));
        assert_eq!(best("fr;q=0, de;q=0.001").as_deref(), Some("de"));
        assert_eq!(
            best("en;q=2, ar;q=0.3").as_deref(),
            Some("ar"),
            "q=2 is malformed"
        );
        assert_eq!(best("!!, 12345"), None);
        assert_eq!(best(""), None);
        let meta = RequestMeta::of(&request(&[("accept-language", "ko-kr, en;q=0.8")]));
        assert_eq!(meta.preferred_locale.as_deref(), Some("ko-KR"));
        assert_eq!(RequestMeta::of(&request(&[])).preferred_locale, None);
    }

    #[test]
    fn locales_are_checked_against_bcp_47_and_put_in_canonical_case() {
        let canonical = RequestMeta::canonical_locale;
        for (given, expected) in [
            ("en", "en"),
            ("AR", "ar"),
            ("zh-hans-cn", "zh-Hans-CN"),
            ("ko_KR", "ko-KR"),
            ("es-419", "es-419"),
            ("sl-rozaj-biske", "sl-rozaj-biske"),
            ("de-CH-1996", "de-CH-1996"),
            ("en-US-u-ca-gregory", "en-US-u-ca-gregory"),
            ("en-x-twain", "en-x-twain"),
            ("zh-yue-HK", "zh-yue-HK"),
        ] {
            assert_eq!(canonical(given).as_deref(), Some(expected), "{given}");
        }
        for bad in [
            "",
            "e",
            "english-",
            "en--US",
            "1234",
            "en-US-u",
            "x-private",
            "en US",
            "en-a-b",
            "abcdefghi",
            "ar-SA-u-nu-arab-ca-islamic-civil-x-aaaaaaa",
        ] {
            assert_eq!(canonical(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_gateway_header_that_is_not_an_address_is_ignored() {
        let meta = RequestMeta::of(&request(&[(
            RequestMeta::CLIENT_IP_HEADER,
            "evil, 1.2.3.4",
        )]));
        assert_eq!(meta.client_ip, "");
    }
}
