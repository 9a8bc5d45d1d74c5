//! An email address, one type for every service: stored as given, compared case-insensitively.
//! Identity registers with it and tenancy invites with it, so an address one accepts the other
//! never refuses.

use std::fmt;

use crate::error::Error;

/// Longest address SMTP can carry (RFC 5321 path limit minus the brackets).
const MAX_LEN: usize = 254;

/// A syntactically plausible email address. Deliverability is proven by verification, not here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    given: String,
    normalized: String,
}

impl Email {
    /// Parse a request field; the error names `field`.
    pub fn parse(field: &str, value: &str) -> Result<Email, Error> {
        let given = value.trim();
        let invalid = |why: &str| Error::invalid(field, why.to_owned());
        if given.is_empty() {
            return Err(invalid("is required"));
        }
        if given.len() > MAX_LEN {
            return Err(invalid("must be at most 254 characters"));
        }
        if given.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("must not contain spaces"));
        }
        let Some((local, domain)) = given.rsplit_once('@') else {
            return Err(invalid("must contain @"));
        };
        if local.is_empty() || local.contains('@') {
            return Err(invalid("must have one @ with a name before it"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 || labels.iter().any(|label| label.is_empty()) {
            return Err(invalid("must have a domain such as example.com after @"));
        }
        Ok(Email {
            given: given.to_owned(),
            normalized: Email::normalize(given),
        })
    }

    /// The comparison key: what the unique index and the lockout counters use.
    pub fn normalize(value: &str) -> String {
        value.trim().to_lowercase()
    }

    pub fn as_str(&self) -> &str {
        &self.given
    }

    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.given)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_differing_only_in_case_compare_equal() {
        let a = Email::parse("email", "Ada@Example.COM").expect("valid");
        let b = Email::parse("email", "ada@example.com").expect("valid");
        assert_eq!(a.normalized(), b.normalized());
        assert_eq!(a.as_str(), "Ada@Example.COM");
    }

    #[test]
    fn malformed_addresses_are_refused_with_a_reason() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "ada@@example.com",
            "a@b..c",
            "a@.example.com",
            "a@example.com.",
        ] {
            let err = Email::parse("email", bad).expect_err(bad);
            assert_eq!(err.violations()[0].field, "email", "{bad}");
        }
    }
}
