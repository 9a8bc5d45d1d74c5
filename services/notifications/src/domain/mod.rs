//! Notifications' values and the rules that need no database.

pub mod category;
pub mod ids;
pub mod locale;
pub mod permissions;

pub use category::{Category, Channels, EmailCadence};
pub use ids::NotificationId;
pub use locale::Locale;
