//! Identity's domain types: validated at the boundary, trusted inside.

pub mod access;
pub mod audit;
pub mod ids;
pub mod lockout;
pub mod names;
pub mod password;
pub mod permissions;
pub mod secrets;
pub mod service_clients;
pub mod session;
pub mod tenancy;
pub mod user;

pub use access::{ApiKey, CustomRole};
pub use audit::{AuditEntry, AuditEvent};
pub use ids::{ApiKeyId, AuditEventId, RoleId, SessionId};
pub use keel_kernel::Email;
pub use names::{DisplayName, RoleName};
pub use password::{Password, PasswordHasherConfig};
pub use service_clients::{ServiceClient, ServiceClients};
pub use session::{RevokeReason, Session};
pub use tenancy::TenantState;
pub use user::User;
