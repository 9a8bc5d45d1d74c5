//! Categories (what a notification is about) and the channels a recipient gets for one.

use keel_kernel::Error;
use keel_proto::notifications::v1 as pb;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, Serialize, Deserialize)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Cannot be turned off (verification, password reset, new sign-in).
    Security,
    Membership,
    Work,
    Billing,
    Marketplace,
}

impl Category {
    pub const ALL: [Category; 5] = [
        Category::Security,
        Category::Membership,
        Category::Work,
        Category::Billing,
        Category::Marketplace,
    ];

    pub fn parse(field: &str, value: i32) -> Result<Category, Error> {
        match pb::Category::try_from(value) {
            Ok(pb::Category::Security) => Ok(Category::Security),
            Ok(pb::Category::Membership) => Ok(Category::Membership),
            Ok(pb::Category::Work) => Ok(Category::Work),
            Ok(pb::Category::Billing) => Ok(Category::Billing),
            Ok(pb::Category::Marketplace) => Ok(Category::Marketplace),
            Ok(pb::Category::Unspecified) => Err(Error::invalid(field, "is required")),
            Err(_) => Err(Error::invalid(field, format!("{value} is not a category"))),
        }
    }

    /// What a recipient gets when neither they nor their tenant chose: everything at once.
    pub fn platform_default(self) -> Channels {
        Channels {
            email: true,
            in_app: true,
            cadence: EmailCadence::Immediate,
        }
    }
}

impl From<Category> for pb::Category {
    fn from(category: Category) -> Self {
        match category {
            Category::Security => pb::Category::Security,
            Category::Membership => pb::Category::Membership,
            Category::Work => pb::Category::Work,
            Category::Billing => pb::Category::Billing,
            Category::Marketplace => pb::Category::Marketplace,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, Serialize, Deserialize)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum EmailCadence {
    Immediate,
    DailyDigest,
}

impl From<EmailCadence> for pb::EmailCadence {
    fn from(cadence: EmailCadence) -> Self {
        match cadence {
            EmailCadence::Immediate => pb::EmailCadence::Immediate,
            EmailCadence::DailyDigest => pb::EmailCadence::DailyDigest,
        }
    }
}

/// The channels of one category for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channels {
    pub email: bool,
    pub in_app: bool,
    pub cadence: EmailCadence,
}

impl Channels {
    /// A choice for `category` from the wire; every invalid field at once, named under
    /// `field` (`preference`). Security messages cannot be turned off or batched.
    pub fn parse(field: &str, preference: &pb::Preference) -> Result<(Category, Channels), Error> {
        let mut violations = keel_kernel::Violations::default();
        let category = violations.check(Category::parse(
            &format!("{field}.category"),
            preference.category,
        ));
        let cadence = match pb::EmailCadence::try_from(preference.email_cadence) {
            Ok(pb::EmailCadence::Unspecified) | Ok(pb::EmailCadence::Immediate) => {
                Some(EmailCadence::Immediate)
            }
            Ok(pb::EmailCadence::DailyDigest) => Some(EmailCadence::DailyDigest),
            Err(_) => {
                violations.add(
                    format!("{field}.email_cadence"),
                    format!("{} is not a cadence", preference.email_cadence),
                );
                None
            }
        };
        if category == Some(Category::Security) {
            if !preference.email {
                violations.add(
                    format!("{field}.email"),
                    "security messages cannot be turned off",
                );
            }
            if !preference.in_app {
                violations.add(
                    format!("{field}.in_app"),
                    "security messages cannot be turned off",
                );
            }
            if cadence == Some(EmailCadence::DailyDigest) {
                violations.add(
                    format!("{field}.email_cadence"),
                    "security messages are sent at once, never in a digest",
                );
            }
        }
        violations.finish()?;
        let (Some(category), Some(cadence)) = (category, cadence) else {
            return Err(Error::invalid(field, "is invalid"));
        };
        Ok((
            category,
            Channels {
                email: preference.email,
                in_app: preference.in_app,
                cadence,
            },
        ))
    }

    /// What security messages always get, whatever a row says.
    pub fn enforce(self, category: Category) -> Channels {
        if category == Category::Security {
            Category::Security.platform_default()
        } else {
            self
        }
    }

    pub fn to_proto(self, category: Category) -> pb::Preference {
        pb::Preference {
            category: pb::Category::from(category) as i32,
            email: self.email,
            in_app: self.in_app,
            email_cadence: pb::EmailCadence::from(self.cadence) as i32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preference(category: pb::Category, email: bool, in_app: bool) -> pb::Preference {
        pb::Preference {
            category: category as i32,
            email,
            in_app,
            email_cadence: 0,
        }
    }

    #[test]
    fn security_channels_cannot_be_turned_off() {
        let err = Channels::parse(
            "preference",
            &preference(pb::Category::Security, false, true),
        )
        .expect_err("security email off is refused");
        assert_eq!(err.code(), keel_kernel::ErrorCode::Validation);
        assert!(
            Channels::parse("preference", &preference(pb::Category::Work, false, false)).is_ok()
        );
    }

    #[test]
    fn an_unspecified_category_is_refused() {
        let err = Channels::parse(
            "preference",
            &preference(pb::Category::Unspecified, true, true),
        )
        .expect_err("a category is required");
        assert_eq!(err.code(), keel_kernel::ErrorCode::Validation);
    }
}
