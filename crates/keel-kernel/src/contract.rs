//! The contracts the protos declare with the `keel.v1.access` method option
//! (`proto/keel/v1/options.proto`): which methods are callable without a token and which
//! permission every caller of a method must hold.
//!
//! Declared once, next to the method, and read from the descriptors by everyone who needs it: the
//! auth layer of every service ([`crate::auth::AuthLayer`]), the edge gateway's route table and
//! its OpenAPI. No service lists its public methods or repeats its permissions in code.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use keel_proto::keel::v1::Access;
use prost_reflect::{DescriptorPool, MethodDescriptor, Value};

/// The full name of the method option carrying [`Access`].
pub const ACCESS_EXTENSION: &str = "keel.v1.access";

/// Why a descriptor set's contract cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("the descriptor set does not decode: {0}")]
    Descriptors(#[from] prost_reflect::DescriptorError),
    #[error("{method}: unreadable {ACCESS_EXTENSION} option: {reason}")]
    Unreadable { method: String, reason: String },
    #[error("{method}: {reason}")]
    Invalid { method: String, reason: String },
}

/// Every method's declared access, by gRPC path (`/identity.v1.AuthService/Login`).
#[derive(Debug, Clone, Default)]
pub struct Contract {
    public: BTreeSet<String>,
    permissions: BTreeMap<String, String>,
}

impl Contract {
    /// The contract of every method in an encoded `FileDescriptorSet` (which must keep custom
    /// options, as protox's own encoding does).
    pub fn from_descriptor_set(bytes: &[u8]) -> Result<Contract, ContractError> {
        Contract::from_pool(&DescriptorPool::decode(bytes)?)
    }

    /// The contract of every method in `pool`.
    pub fn from_pool(pool: &DescriptorPool) -> Result<Contract, ContractError> {
        let mut contract = Contract::default();
        for service in pool.services() {
            for method in service.methods() {
                let Some(access) = access(&method)? else {
                    continue;
                };
                let path = grpc_path(&method);
                if access.public {
                    contract.public.insert(path);
                } else if !access.permission.is_empty() {
                    contract.permissions.insert(path, access.permission);
                }
            }
        }
        Ok(contract)
    }

    /// The gRPC paths of the methods declared callable without a token.
    pub fn public_methods(&self) -> impl Iterator<Item = &str> {
        self.public.iter().map(String::as_str)
    }

    /// Whether the method at `path` is declared callable without a token.
    pub fn is_public(&self, path: &str) -> bool {
        self.public.contains(path)
    }

    /// The permission every caller of the method at `path` must hold, if it declares one.
    pub fn permission(&self, path: &str) -> Option<&str> {
        self.permissions.get(path).map(String::as_str)
    }

    /// Every declared permission, each once, sorted.
    pub fn permissions(&self) -> impl Iterator<Item = &str> {
        self.permissions
            .values()
            .map(String::as_str)
            .collect::<BTreeSet<_>>()
            .into_iter()
    }
}

/// The contract of the platform's own protos (`keel_proto::FILE_DESCRIPTOR_SET`), read on first
/// use; the auth layer reads it when a server is built, so that is at start-up.
pub fn embedded() -> &'static Contract {
    static EMBEDDED: OnceLock<Contract> = OnceLock::new();
    EMBEDDED.get_or_init(|| {
        // Cannot fail in a built binary: build.rs encoded these bytes with protox in the same
        // build, and the test `the_embedded_contract_reads` below decodes and validates them. A
        // failure is a broken build, and it shows at start-up, not on a request.
        Contract::from_descriptor_set(keel_proto::FILE_DESCRIPTOR_SET)
            .expect("the embedded descriptor set carries a valid contract")
    })
}

/// The gRPC paths of the platform's methods declared callable without a token.
pub fn public_methods() -> impl Iterator<Item = &'static str> {
    embedded().public_methods()
}

/// The permission every caller of the platform method at `path` must hold, if it declares one.
pub fn permission(path: &str) -> Option<&'static str> {
    embedded().permission(path)
}

/// Every permission the platform's methods declare, each once, sorted.
pub fn permissions() -> impl Iterator<Item = &'static str> {
    embedded().permissions()
}

/// The `keel.v1.access` option of `method` (read from the method's own pool, so it works for
/// protos not built into this binary too), `None` when the method declares none.
pub fn access(method: &MethodDescriptor) -> Result<Option<Access>, ContractError> {
    let Some(extension) = method.parent_pool().get_extension_by_name(ACCESS_EXTENSION) else {
        // The pool does not even know the option, so nothing in it can declare one.
        return Ok(None);
    };
    let options = method.options();
    if !options.has_extension(&extension) {
        return Ok(None);
    }
    let unreadable = |reason: String| ContractError::Unreadable {
        method: method.full_name().to_owned(),
        reason,
    };
    let access = match options.get_extension(&extension).as_ref() {
        Value::Message(message) => message
            .transcode_to::<Access>()
            .map_err(|err| unreadable(err.to_string()))?,
        other => return Err(unreadable(format!("not a message: {other:?}"))),
    };
    validate(method, &access)?;
    Ok(Some(access))
}

/// `/identity.v1.AuthService/Login`: the path a gRPC request for `method` is sent to.
pub fn grpc_path(method: &MethodDescriptor) -> String {
    format!("/{}/{}", method.parent_service().full_name(), method.name())
}

/// A declaration the auth layer could not honour is refused when the contract is read, not
/// discovered on a request.
fn validate(method: &MethodDescriptor, access: &Access) -> Result<(), ContractError> {
    let invalid = |reason: String| ContractError::Invalid {
        method: method.full_name().to_owned(),
        reason,
    };
    if access.public && !access.permission.is_empty() {
        return Err(invalid(format!(
            "a public method cannot require a permission (`{}`): without a token there is nothing to check it on",
            access.permission
        )));
    }
    if access.permission.is_empty() {
        return Ok(());
    }
    let segments: Vec<&str> = access.permission.split('.').collect();
    let well_formed = segments.len() == 3
        && segments
            .iter()
            .all(|s| !s.is_empty() && *s != "*" && s.bytes().all(is_name_byte));
    if !well_formed {
        return Err(invalid(format!(
            "permission `{}` is not `<context>.<resource>.<action>` in lowercase without wildcards",
            access.permission
        )));
    }
    Ok(())
}

fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_contract_reads() {
        let contract = Contract::from_descriptor_set(keel_proto::FILE_DESCRIPTOR_SET)
            .expect("the embedded contract is valid");
        assert!(contract.is_public("/identity.v1.AuthService/Login"));
        assert_eq!(
            contract.permission("/identity.v1.AccessService/ListRoles"),
            Some("identity.role.list")
        );
    }

    #[test]
    fn the_public_methods_are_identitys_credential_exchanges_and_signed_webhooks() {
        let public: Vec<&str> = public_methods().collect();
        assert_eq!(
            public,
            [
                // Authenticated by the provider's HMAC signature over the body, not a token.
                "/billing.v1.BillingService/IngestWebhook",
                "/identity.v1.AuthService/ExchangeApiKey",
                "/identity.v1.AuthService/GetJwks",
                // Authenticated by the service client's secret (client credentials).
                "/identity.v1.AuthService/IssueServiceToken",
                "/identity.v1.AuthService/Login",
                "/identity.v1.AuthService/Refresh",
                "/identity.v1.AuthService/Register",
                // Anyone may ask (same answer for every email); the reset needs the emailed token.
                "/identity.v1.AuthService/RequestPasswordReset",
                "/identity.v1.AuthService/ResetPassword",
                "/identity.v1.AuthService/VerifyEmail",
            ]
        );
    }

    #[test]
    fn a_method_without_the_option_declares_nothing() {
        assert!(!embedded().is_public("/identity.v1.AccessService/ListPermissions"));
        assert_eq!(
            permission("/identity.v1.AccessService/ListPermissions"),
            None
        );
        assert_eq!(permission("/no.such.Service/Method"), None);
    }

    #[test]
    fn every_declared_permission_is_listed_once() {
        let all: Vec<&str> = permissions().collect();
        assert!(all.contains(&"tenancy.member.read"));
        assert_eq!(
            all.iter().filter(|p| **p == "tenancy.member.read").count(),
            1
        );
        assert!(all.windows(2).all(|pair| pair[0] < pair[1]), "{all:?}");
    }
}
