//! Validated identifier newtypes. Inside the platform an id is never a bare string or uuid, so a
//! user id cannot be passed where a tenant id is expected.

/// Declare a UUID-backed id newtype: `id_type!(/** doc */ OrderId, "order id", v7);`.
///
/// The last argument picks how `new()` makes one: `v7` (time-ordered, index-friendly, the
/// default for rows) or `v4` (random, for ids that are part of a secret and should tell nothing
/// about when they were made). There is deliberately no `Default`: an id is either parsed from
/// input or minted on purpose, never invented by a `..Default::default()`.
///
/// The calling crate needs `serde`, `sqlx` and `uuid` as dependencies (the derives name them).
#[macro_export]
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $label:literal, v7) => {
        $crate::id_type!(@define $(#[$doc])* $name, $label, ::uuid::Uuid::now_v7());
    };
    ($(#[$doc:meta])* $name:ident, $label:literal, v4) => {
        $crate::id_type!(@define $(#[$doc])* $name, $label, ::uuid::Uuid::new_v4());
    };
    (@define $(#[$doc:meta])* $name:ident, $label:literal, $mint:expr) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            ::serde::Serialize, ::serde::Deserialize, ::sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(::uuid::Uuid);

        impl $name {
            /// A freshly minted id.
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                $name($mint)
            }

            pub fn from_uuid(id: ::uuid::Uuid) -> Self {
                $name(id)
            }

            pub fn as_uuid(&self) -> ::uuid::Uuid {
                self.0
            }

            /// Parse a request field; the error names `field` (an empty value is "is required").
            pub fn parse_field(field: &str, value: &str) -> ::std::result::Result<Self, $crate::Error> {
                if value.is_empty() {
                    return Err($crate::Error::invalid(field, "is required"));
                }
                value.parse().map_err(|_| {
                    $crate::Error::invalid(field, concat!("must be a ", $label, " (a UUID)"))
                })
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::uuid::Error;
            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                ::uuid::Uuid::parse_str(s).map($name)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// The tenant a request, row or event belongs to.
    TenantId, "tenant id", v7
);
id_type!(
    /// A human user (identity service).
    UserId, "user id", v7
);
id_type!(
    /// A domain event's id: also its JetStream `Nats-Msg-Id`.
    EventId, "event id", v7
);
id_type!(
    /// A tenant's custom role: identity mints and owns them; tenancy records which one a member
    /// holds.
    RoleId, "role id", v7
);
