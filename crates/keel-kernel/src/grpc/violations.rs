//! Collecting field violations, so a request reports all of its invalid fields in one answer and
//! a client can fix a form in one round trip.

use crate::error::{Error, FieldViolation};

/// Parse every field of a request through this, then [`Violations::finish`]:
///
/// ```ignore
/// let mut fields = Violations::default();
/// let email = fields.check(Email::parse("email", &request.email));
/// let name = fields.check(DisplayName::parse("display_name", &request.display_name));
/// fields.finish()?;
/// // every `Option` above is `Some` here
/// ```
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Keep the value, or remember why its field is invalid.
    pub fn check<T>(&mut self, parsed: Result<T, Error>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(err) => {
                self.reject(err);
                None
            }
        }
    }

    /// Remember an error found outside a parser. An error without field violations (a rule about
    /// the request as a whole) is kept with an empty field name, so it is never lost.
    pub fn reject(&mut self, err: Error) {
        match err.violations() {
            [] => self.0.push(FieldViolation {
                field: String::new(),
                description: err.message().to_owned(),
            }),
            violations => self.0.extend_from_slice(violations),
        }
    }

    /// Remember one invalid field.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn every_invalid_field_is_reported_together() {
        let mut fields = Violations::default();
        let a: Option<i32> = fields.check(Err(Error::invalid("a", "bad")));
        let b = fields.check(Ok(2));
        let c: Option<i32> = fields.check(Err(Error::invalid("c", "worse")));
        assert_eq!((a, b, c), (None, Some(2), None));
        let err = fields.finish().expect_err("two fields are invalid");
        assert_eq!(err.code(), ErrorCode::Validation);
        let names: Vec<_> = err.violations().iter().map(|v| v.field.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
    }

    #[test]
    fn a_rule_without_a_field_is_kept() {
        let mut fields = Violations::default();
        fields.reject(Error::conflict("not a field error"));
        let err = fields.finish().expect_err("one violation");
        assert_eq!(err.violations()[0].description, "not a field error");
    }

    #[test]
    fn no_violations_is_ok() {
        assert!(Violations::default().finish().is_ok());
    }
}
