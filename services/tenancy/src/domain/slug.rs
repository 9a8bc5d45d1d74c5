//! A tenant's slug: its unique, URL-safe handle.

use std::fmt;

use keel_kernel::Error;

pub const MIN_LEN: usize = 3;
pub const MAX_LEN: usize = 63;

/// Lowercase `[a-z0-9-]`, 3 to 63 characters, starting and ending with a letter or digit (so it
/// works as a DNS label too).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slug(String);

impl Slug {
    /// Validate `value` of request field `field`.
    pub fn parse(field: &str, value: &str) -> Result<Slug, Error> {
        let len = value.chars().count();
        if !(MIN_LEN..=MAX_LEN).contains(&len) {
            return Err(Error::invalid(
                field,
                format!("must be {MIN_LEN} to {MAX_LEN} characters long"),
            ));
        }
        if let Some(bad) = value
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(Error::invalid(
                field,
                format!("may contain only lowercase letters, digits and '-', not {bad:?}"),
            ));
        }
        if value.starts_with('-') || value.ends_with('-') {
            return Err(Error::invalid(field, "must not start or end with '-'"));
        }
        Ok(Slug(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lowercase_handle_is_a_slug() {
        assert_eq!(
            Slug::parse("slug", "acme-42").map(|s| s.0).ok(),
            Some("acme-42".into())
        );
    }

    #[test]
    fn uppercase_spaces_and_symbols_are_refused() {
        for bad in ["Acme", "ac me", "acme_co", "acmé", "a/b"] {
            assert!(Slug::parse("slug", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn too_short_too_long_and_dangling_hyphens_are_refused() {
        for bad in ["ab", &"a".repeat(64), "-acme", "acme-"] {
            assert!(Slug::parse("slug", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_error_names_the_field() {
        let err = Slug::parse("tenant.slug", "A")
            .err()
            .map(|e| e.violations()[0].field.clone());
        assert_eq!(err.as_deref(), Some("tenant.slug"));
    }
}
