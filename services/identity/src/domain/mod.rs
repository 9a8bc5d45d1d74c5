//! Identity's domain types: validated at the boundary, trusted inside.

pub mod ids;
pub mod lockout;
pub mod names;
pub mod password;
pub mod permissions;
pub mod secrets;

pub use ids::{ApiKeyId, RoleId, SessionId};
pub use keel_kernel::Email;
pub use names::{DisplayName, RoleName};
pub use password::{Password, PasswordHasherConfig};
