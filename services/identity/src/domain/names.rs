//! Names people and tenants choose.

use keel_kernel::Error;
use keel_kernel::auth::roles;

/// The name shown to other members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(field: &str, value: &str) -> Result<Self, Error> {
        let value = value.trim();
        if value.is_empty() {
            return Err(Error::invalid(field, "is required"));
        }
        if value.chars().count() > 100 {
            return Err(Error::invalid(field, "must be at most 100 characters"));
        }
        if value.chars().any(char::is_control) {
            return Err(Error::invalid(field, "must not contain control characters"));
        }
        Ok(DisplayName(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A custom role's name: lowercase `[a-z][a-z0-9_-]*`, at most 64 characters, not a built-in name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleName(String);

impl RoleName {
    pub fn parse(field: &str, value: &str) -> Result<Self, Error> {
        let mut chars = value.chars();
        let well_formed = matches!(chars.next(), Some('a'..='z'))
            && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
            && value.len() <= 64;
        if !well_formed {
            return Err(Error::invalid(
                field,
                "must be lowercase letters, digits, '_' or '-', starting with a letter, at most 64 characters",
            ));
        }
        if roles::BUILT_IN.contains(&value) {
            return Err(Error::invalid(field, "is the name of a built-in role"));
        }
        Ok(RoleName(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_lowercase_identifiers_and_not_built_in() {
        assert!(RoleName::parse("role.name", "release-manager").is_ok());
        for bad in ["", "Release", "9lives", "a b", "owner"] {
            assert!(RoleName::parse("role.name", bad).is_err(), "{bad}");
        }
    }
}
