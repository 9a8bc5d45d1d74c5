//! Proto <-> domain. Requests become commands through `TryFrom`, reporting every invalid field at
//! once; domain values become proto messages.

use keel_kernel::grpc::timestamp;
use keel_kernel::{Actor, ActorKind, Error, Violations};
use keel_proto::identity::v1 as pb;

use crate::domain::{ApiKey, AuditEvent, CustomRole, DisplayName, Email, Password, Session, User};

/// A valid registration.
pub struct Registration {
    pub email: Email,
    pub password: Password,
    pub display_name: DisplayName,
}

impl TryFrom<pb::RegisterRequest> for Registration {
    type Error = Error;

    fn try_from(request: pb::RegisterRequest) -> Result<Self, Error> {
        let mut fields = Violations::default();
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

pub fn user(user: &User) -> pb::User {
    pb::User {
        id: user.id.to_string(),
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        email_verified: user.email_verified,
        locale: user.locale.clone(),
        create_time: Some(timestamp(user.created_at)),
        update_time: Some(timestamp(user.updated_at)),
    }
}

/// A session; `current` is the caller's own session id (the token's `sid`).
pub fn session(session: &Session, current: Option<&str>) -> pb::Session {
    let id = session.id.to_string();
    pb::Session {
        current: current == Some(id.as_str()),
        id,
        user_agent: session.user_agent.clone(),
        ip_address: session.ip_address.clone(),
        tenant_id: session
            .scope_tenant
            .map(|t| t.to_string())
            .unwrap_or_default(),
        create_time: Some(timestamp(session.created_at)),
        last_use_time: Some(timestamp(session.last_used_at)),
        expire_time: Some(timestamp(session.expires_at)),
    }
}

pub fn custom_role(role: &CustomRole) -> pb::Role {
    pb::Role {
        id: role.id.to_string(),
        tenant_id: role.tenant_id.to_string(),
        name: role.name.clone(),
        description: role.description.clone(),
        permissions: role.permissions.clone(),
        built_in: false,
        create_time: Some(timestamp(role.created_at)),
        update_time: Some(timestamp(role.updated_at)),
    }
}

/// A key; its `secret` only in the answer to its creation.
pub fn api_key(key: &ApiKey, secret: Option<String>) -> pb::ApiKey {
    pb::ApiKey {
        id: key.id.to_string(),
        tenant_id: key.tenant_id.to_string(),
        name: key.name.clone(),
        scopes: key.scopes.clone(),
        expire_time: key.expires_at.map(timestamp),
        prefix: key.prefix.clone(),
        secret: secret.unwrap_or_default(),
        created_by: key.created_by.clone(),
        create_time: Some(timestamp(key.created_at)),
        last_use_time: key.last_used_at.map(timestamp),
    }
}

fn actor_kind(actor: &Actor) -> pb::ActorKind {
    match actor.kind {
        ActorKind::User => pb::ActorKind::User,
        ActorKind::ApiKey => pb::ActorKind::ApiKey,
        ActorKind::Service => pb::ActorKind::Service,
        ActorKind::System => pb::ActorKind::System,
    }
}

pub fn audit_event(event: &AuditEvent) -> pb::AuditEvent {
    pb::AuditEvent {
        id: event.id.to_string(),
        tenant_id: event.tenant_id.to_string(),
        actor_kind: actor_kind(&event.actor) as i32,
        actor_id: event.actor.id.clone(),
        action: event.action.clone(),
        target_type: event.target_type.clone(),
        target_id: event.target_id.clone(),
        request_id: event.request_id.clone(),
        ip_address: event.ip_address.clone(),
        metadata: event.metadata.clone(),
        create_time: Some(timestamp(event.created_at)),
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
