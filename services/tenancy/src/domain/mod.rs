//! Tenancy's domain: validated values and the rules that do not need a database.
//!
//! Everything here is built from request fields through `parse` functions that name the field at
//! fault, so the gRPC layer can report every invalid field at once.

pub mod access;
pub mod invitation;
pub mod member;
pub mod module;
pub mod slug;
pub mod tenant;

pub use access::Caller;
pub use invitation::{Invitation, InvitationState, InvitationToken};
pub use member::{Email, Membership, Role};
pub use module::{FlagName, ModuleName};
pub use slug::Slug;
pub use tenant::{Lifecycle, Tenant, TenantName, TenantState};

use keel_kernel::{Error, FieldViolation};

/// Collects field violations so a request reports all of its invalid fields in one answer.
#[derive(Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Keep the value, or remember why its field is invalid.
    pub fn check<T>(&mut self, parsed: Result<T, Error>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(err) => {
                match err.violations() {
                    [] => self.0.push(FieldViolation {
                        field: String::new(),
                        description: err.message().to_owned(),
                    }),
                    violations => self.0.extend_from_slice(violations),
                }
                None
            }
        }
    }

    /// The collected violations as one VALIDATION error, if there were any.
    pub fn finish(self) -> Result<(), Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid_fields(self.0))
        }
    }
}
