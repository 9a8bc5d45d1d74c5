//! The module catalogue, a tenant's modules and feature-flag overrides, and their names.

use std::fmt;

use chrono::{DateTime, Utc};
use keel_kernel::{Error, TenantId};

/// A module of the catalogue (platform data, the same for every tenant).
#[derive(Debug, Clone, PartialEq)]
pub struct Module {
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub default_enabled: bool,
    /// Display order; also the catalogue's page position.
    pub position: i32,
}

/// A module's setting for one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantModule {
    pub tenant_id: TenantId,
    pub module: String,
    pub enabled: bool,
    pub updated_at: DateTime<Utc>,
}

/// A tenant's override of a feature flag's platform default.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureFlag {
    pub tenant_id: TenantId,
    pub name: String,
    pub enabled: bool,
    pub updated_at: DateTime<Utc>,
}

/// A module of the catalogue is named by a lowercase word; whether it exists is the catalogue's
/// answer (NOT_FOUND), not a validation error.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModuleName(String);

impl ModuleName {
    pub fn parse(field: &str, value: &str) -> Result<ModuleName, Error> {
        if value.is_empty() {
            return Err(Error::invalid(field, "is required"));
        }
        if value.len() > 63
            || !value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(Error::invalid(
                field,
                "must be a module name such as `delivery`",
            ));
        }
        Ok(ModuleName(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A feature flag: lowercase dotted words, e.g. `delivery.bulk_import`, at most 100 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlagName(String);

impl FlagName {
    pub const MAX_LEN: usize = 100;

    pub fn parse(field: &str, value: &str) -> Result<FlagName, Error> {
        if value.is_empty() {
            return Err(Error::invalid(field, "is required"));
        }
        let word_ok = |w: &str| {
            w.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if value.len() > Self::MAX_LEN || !value.split('.').all(word_ok) {
            return Err(Error::invalid(
                field,
                format!(
                    "must be lowercase dotted words like `delivery.bulk_import`, at most {} characters",
                    Self::MAX_LEN
                ),
            ));
        }
        Ok(FlagName(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_names_are_lowercase_dotted_words() {
        assert!(FlagName::parse("flag", "delivery.bulk_import").is_ok());
        assert!(FlagName::parse("flag", "beta").is_ok());
        for bad in ["", "Delivery.x", "a..b", ".a", "a.", "a-b", "1a"] {
            assert!(FlagName::parse("flag", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn module_names_are_lowercase_words() {
        assert!(ModuleName::parse("module", "marketplace").is_ok());
        assert!(ModuleName::parse("module", "Market Place").is_err());
        assert!(ModuleName::parse("module", "").is_err());
    }
}
