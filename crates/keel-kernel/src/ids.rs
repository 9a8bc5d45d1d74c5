//! Validated identifier newtypes. Inside the platform an id is never a bare string or uuid, so a
//! user id cannot be passed where a tenant id is expected.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::error::Error;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $label:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new time-ordered (v7) id: index-friendly, roughly sortable by creation.
            pub fn new() -> Self {
                $name(Uuid::now_v7())
            }

            pub fn from_uuid(id: Uuid) -> Self {
                $name(id)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Parse a request field; the error names `field`.
            pub fn parse_field(field: &str, value: &str) -> Result<Self, Error> {
                value
                    .parse()
                    .map_err(|_| Error::invalid(field, concat!("must be a ", $label, " (a UUID)")))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// The tenant a request, row or event belongs to.
    TenantId, "tenant id"
);
uuid_id!(
    /// A human user (identity service).
    UserId, "user id"
);
uuid_id!(
    /// A domain event's id: also its JetStream `Nats-Msg-Id`.
    EventId, "event id"
);
