//! SQL, and only SQL: plain query strings over the caller's transaction. The caller chooses the
//! transaction's scope (`tenant_tx` for tenant tables, `unscoped_tx` for global ones), so every
//! function here takes a connection and names its tenant or user explicitly.

pub mod api_keys;
pub mod audit;
pub mod roles;
pub mod sessions;
pub mod tenancy;
pub mod throttle;
pub mod users;
pub mod verifications;

/// Clamp a requested page size: 0 means the default.
pub fn page_size(requested: i32, default: i64, max: i64) -> i64 {
    match requested {
        n if n <= 0 => default,
        n => i64::from(n).min(max),
    }
}
