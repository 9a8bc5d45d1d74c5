//! Who caused a change: one typed value from the verified request to the audit row and the
//! event envelope, so nothing along the way guesses or defaults.

use std::fmt;

use keel_proto::events::v1::{Actor as ActorProto, actor};

use crate::auth::{Claims, PrincipalKind};

/// The kind of principal behind a change. Stored as text (`user`, `api_key`, `service`,
/// `system`); an unknown value in the database is an error, not a silent `system`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, sqlx::Type,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum ActorKind {
    User,
    ApiKey,
    Service,
    /// The platform itself: a consumer reacting to an event, a scheduled job.
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::ApiKey => "api_key",
            ActorKind::Service => "service",
            ActorKind::System => "system",
        }
    }

    fn proto(self) -> actor::Kind {
        match self {
            ActorKind::User => actor::Kind::User,
            ActorKind::ApiKey => actor::Kind::ApiKey,
            ActorKind::Service => actor::Kind::Service,
            ActorKind::System => actor::Kind::System,
        }
    }
}

impl From<PrincipalKind> for ActorKind {
    fn from(kind: PrincipalKind) -> Self {
        match kind {
            PrincipalKind::User => ActorKind::User,
            PrincipalKind::ApiKey => ActorKind::ApiKey,
            PrincipalKind::Service => ActorKind::Service,
        }
    }
}

/// A principal that caused a change: its kind and id (a user id, an API key id, a service name,
/// or the system's job name).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
}

impl Actor {
    /// The principal of a verified token.
    pub fn of(claims: &Claims) -> Actor {
        Actor {
            kind: claims.kind.into(),
            id: claims.sub.clone(),
        }
    }

    /// A user acting on their own account, also before they hold a token (registering, logging
    /// in, verifying their email).
    pub fn user(user: crate::ids::UserId) -> Actor {
        Actor {
            kind: ActorKind::User,
            id: user.to_string(),
        }
    }

    /// The platform acting on its own (`what` names the job or consumer).
    pub fn system(what: impl Into<String>) -> Actor {
        Actor {
            kind: ActorKind::System,
            id: what.into(),
        }
    }

    /// Read an envelope's actor. An unspecified or unknown kind is `None`: the caller decides
    /// what that means instead of this function inventing a kind.
    pub fn from_proto(actor: &ActorProto) -> Option<Actor> {
        let kind = match actor::Kind::try_from(actor.kind).ok()? {
            actor::Kind::User => ActorKind::User,
            actor::Kind::ApiKey => ActorKind::ApiKey,
            actor::Kind::Service => ActorKind::Service,
            actor::Kind::System => ActorKind::System,
            actor::Kind::Unspecified => return None,
        };
        Some(Actor {
            kind,
            id: actor.id.clone(),
        })
    }

    pub fn to_proto(&self) -> ActorProto {
        ActorProto {
            kind: self.kind.proto() as i32,
            id: self.id.clone(),
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_survives_the_envelope() {
        for kind in [
            ActorKind::User,
            ActorKind::ApiKey,
            ActorKind::Service,
            ActorKind::System,
        ] {
            let actor = Actor {
                kind,
                id: "x".into(),
            };
            assert_eq!(Actor::from_proto(&actor.to_proto()), Some(actor));
        }
    }

    #[test]
    fn an_unspecified_kind_is_not_guessed() {
        let unspecified = ActorProto {
            kind: 0,
            id: "x".into(),
        };
        assert_eq!(Actor::from_proto(&unspecified), None);
    }
}
