//! Identity's own id newtypes (the kernel has `UserId` and `TenantId`).

use std::fmt;
use std::str::FromStr;

use keel_kernel::Error;
use uuid::Uuid;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident, $label:literal, $generate:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, sqlx::Type)]
        #[sqlx(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub fn new() -> Self {
                $name($generate)
            }

            pub fn from_uuid(id: Uuid) -> Self {
                $name(id)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Parse a request field; the error names `field`.
            pub fn parse_field(field: &str, value: &str) -> Result<Self, Error> {
                if value.is_empty() {
                    return Err(Error::invalid(field, "is required"));
                }
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

id!(
    /// A login session: the `sid` claim, and one refresh-token family.
    SessionId, "session id", Uuid::now_v7()
);
id!(
    /// A custom role of a tenant.
    RoleId, "role id", Uuid::now_v7()
);
id!(
    /// An API key. Random (v4), not time-ordered: its hex is part of the secret and the prefix,
    /// and should tell nothing about when the key was made.
    ApiKeyId, "API key id", Uuid::new_v4()
);
