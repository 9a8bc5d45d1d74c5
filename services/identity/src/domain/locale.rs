//! A user's language: a well-formed BCP 47 tag in canonical case (the kernel's check, shared with
//! every service that stores a language), or none.

use keel_kernel::{Error, RequestMeta};

/// The languages the platform's messages are written in; any other well-formed tag is accepted
/// too (a notifier falls back to English for it).
pub const SUPPORTED: &[&str] = &["ar", "en", "zh", "ko"];

/// `value` as a stored locale: `""` (no preference) stays empty; anything else must be a
/// well-formed BCP 47 tag, else INVALID_ARGUMENT on `field`.
pub fn parse(field: &str, value: &str) -> Result<String, Error> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    RequestMeta::canonical_locale(value).ok_or_else(|| {
        Error::invalid(
            field,
            format!(
                "must be a BCP 47 language tag such as {} or zh-Hant-TW",
                SUPPORTED.join(", ")
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_canonicalised_and_garbage_names_the_field() {
        assert_eq!(parse("locale", " ZH-hant ").unwrap(), "zh-Hant");
        assert_eq!(parse("locale", "").unwrap(), "");
        let err = parse("user.locale", "not a language").unwrap_err();
        assert_eq!(err.violations()[0].field, "user.locale");
    }
}
