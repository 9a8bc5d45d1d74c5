//! Proto <-> domain. Requests become commands through `TryFrom`, reporting every invalid field at
//! once; rows become proto messages.

use chrono::{DateTime, Utc};
use keel_kernel::{Error, FieldViolation};
use keel_proto::identity::v1 as pb;

use crate::domain::{DisplayName, Email, Password};
use crate::repo::api_keys::ApiKeyRow;
use crate::repo::audit::AuditRow;
use crate::repo::roles::RoleRow;
use crate::repo::sessions::SessionRow;
use crate::repo::users::UserRow;

pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

pub fn from_timestamp(field: &str, ts: &prost_types::Timestamp) -> Result<DateTime<Utc>, Error> {
    DateTime::from_timestamp(ts.seconds, ts.nanos.max(0) as u32)
        .ok_or_else(|| Error::invalid(field, "is not a valid time"))
}

/// Run every field's parser and report all violations together.
pub struct Fields {
    violations: Vec<FieldViolation>,
}

impl Fields {
    pub fn new() -> Self {
        Fields {
            violations: Vec::new(),
        }
    }

    /// Keep a parsed value, or remember why it failed.
    pub fn check<T>(&mut self, parsed: Result<T, Error>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(err) => {
                self.violations.extend(err.violations().iter().cloned());
                None
            }
        }
    }

    /// Remember a violation found outside a parser.
    pub fn reject(&mut self, err: Error) {
        self.violations.extend(err.violations().iter().cloned());
    }

    pub fn finish(self) -> Result<(), Error> {
        if self.violations.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid_fields(self.violations))
        }
    }
}

impl Default for Fields {
    fn default() -> Self {
        Fields::new()
    }
}

/// A valid registration.
pub struct Registration {
    pub email: Email,
    pub password: Password,
    pub display_name: DisplayName,
}

impl TryFrom<pb::RegisterRequest> for Registration {
    type Error = Error;

    fn try_from(request: pb::RegisterRequest) -> Result<Self, Error> {
        let mut fields = Fields::new();
        let email = fields.check(Email::parse("email", &request.email));
        let password = fields.check(Password::parse("password", &request.password));
        let display_name = fields.check(DisplayName::parse("display_name", &request.display_name));
        fields.finish()?;
        match (email, password, display_name) {
            (Some(email), Some(password), Some(display_name)) => Ok(Registration {
                email,
                password,
                display_name,
            }),
            _ => Err(Error::internal(anyhow::anyhow!(
                "registration fields parsed without violations yet missing"
            ))),
        }
    }
}

pub fn user(row: UserRow) -> pb::User {
    pb::User {
        id: row.id.to_string(),
        email: row.email,
        display_name: row.display_name,
        email_verified: row.email_verified,
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
    }
}

pub fn session(row: SessionRow, current: Option<&str>) -> pb::Session {
    let id = row.id.to_string();
    pb::Session {
        current: current == Some(id.as_str()),
        id,
        user_agent: row.user_agent,
        ip_address: row.ip_address,
        tenant_id: row.scope_tenant.map(|t| t.to_string()).unwrap_or_default(),
        create_time: Some(timestamp(row.created_at)),
        last_use_time: Some(timestamp(row.last_used_at)),
        expire_time: Some(timestamp(row.expires_at)),
    }
}

pub fn custom_role(row: RoleRow) -> pb::Role {
    pb::Role {
        id: row.id.to_string(),
        tenant_id: row.tenant_id.to_string(),
        name: row.name,
        description: row.description,
        permissions: row.permissions,
        built_in: false,
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
    }
}

pub fn api_key(row: ApiKeyRow, secret: Option<String>) -> pb::ApiKey {
    pb::ApiKey {
        id: row.id.to_string(),
        tenant_id: row.tenant_id.to_string(),
        name: row.name,
        scopes: row.scopes,
        expire_time: row.expires_at.map(timestamp),
        prefix: row.prefix,
        secret: secret.unwrap_or_default(),
        created_by: row.created_by,
        create_time: Some(timestamp(row.created_at)),
        last_use_time: row.last_used_at.map(timestamp),
    }
}

pub fn audit_event(row: AuditRow) -> pb::AuditEvent {
    let actor_kind = match row.actor_kind.as_str() {
        "user" => pb::ActorKind::User,
        "api_key" => pb::ActorKind::ApiKey,
        "service" => pb::ActorKind::Service,
        "system" => pb::ActorKind::System,
        _ => pb::ActorKind::Unspecified,
    };
    pb::AuditEvent {
        id: row.id.to_string(),
        tenant_id: row.tenant_id.to_string(),
        actor_kind: actor_kind as i32,
        actor_id: row.actor_id,
        action: row.action,
        target_type: row.target_type,
        target_id: row.target_id,
        request_id: row.request_id,
        ip_address: row.ip_address,
        metadata: row.metadata.0,
        create_time: Some(timestamp(row.created_at)),
    }
}

/// A JWK as the proto (and so ProtoJSON) carries it.
pub fn jwk(jwk: &jsonwebtoken::jwk::Jwk) -> pb::Jwk {
    use jsonwebtoken::jwk::AlgorithmParameters;
    let mut out = pb::Jwk {
        kid: jwk.common.key_id.clone().unwrap_or_default(),
        key_use: "sig".into(),
        ..Default::default()
    };
    match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(okp) => {
            out.kty = "OKP".into();
            out.crv = "Ed25519".into();
            out.x = okp.x.clone();
            out.alg = "EdDSA".into();
        }
        AlgorithmParameters::RSA(rsa) => {
            out.kty = "RSA".into();
            out.n = rsa.n.clone();
            out.e = rsa.e.clone();
            out.alg = "RS256".into();
        }
        AlgorithmParameters::EllipticCurve(_) | AlgorithmParameters::OctetKey(_) => {}
    }
    out
}
