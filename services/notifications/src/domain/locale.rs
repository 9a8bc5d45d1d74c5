//! The languages messages are written in, and how one is chosen for a recipient.

use serde::{Deserialize, Serialize};

/// A language the templates exist in. English is the fallback for everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Locale {
    Ar,
    En,
    Zh,
    Ko,
}

impl Locale {
    pub const ALL: [Locale; 4] = [Locale::Ar, Locale::En, Locale::Zh, Locale::Ko];

    /// The BCP 47 tag of the templates' language.
    pub fn tag(self) -> &'static str {
        match self {
            Locale::Ar => "ar",
            Locale::En => "en",
            Locale::Zh => "zh",
            Locale::Ko => "ko",
        }
    }

    /// Whether the language is written right to left (the HTML email gets `dir="rtl"`).
    pub fn is_rtl(self) -> bool {
        self == Locale::Ar
    }

    /// The supported language of a BCP 47 tag (`ar-EG`, `zh-Hant-TW`, `ko`), by its primary
    /// subtag; None for any other language or an empty tag.
    pub fn from_tag(tag: &str) -> Option<Locale> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "ar" => Some(Locale::Ar),
            "en" => Some(Locale::En),
            "zh" => Some(Locale::Zh),
            "ko" => Some(Locale::Ko),
            _ => None,
        }
    }

    /// The first supported language of an `Accept-Language` header, by quality (ties keep the
    /// header's order); `q=0` means "not this one".
    pub fn from_accept_language(header: &str) -> Option<Locale> {
        let mut ranked: Vec<(f32, usize, Locale)> = header
            .split(',')
            .enumerate()
            .filter_map(|(position, entry)| {
                let mut parts = entry.split(';');
                let locale = Locale::from_tag(parts.next()?)?;
                let quality = parts
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .map(|q| q.trim().parse::<f32>().unwrap_or(0.0))
                    .unwrap_or(1.0);
                (quality > 0.0).then_some((quality, position, locale))
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        ranked.first().map(|(_, _, locale)| *locale)
    }

    /// The recipient's language: their own preference, else their tenant's default, else the
    /// `Accept-Language` of the request that caused the message, else English. Unsupported
    /// choices are skipped, not fatal.
    pub fn choose(user: &str, tenant_default: &str, accept_language: &str) -> Locale {
        Locale::from_tag(user)
            .or_else(|| Locale::from_tag(tenant_default))
            .or_else(|| Locale::from_accept_language(accept_language))
            .unwrap_or(Locale::En)
    }
}

impl std::fmt::Display for Locale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.tag())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_language_wins_then_the_tenants_then_the_request_s() {
        assert_eq!(Locale::choose("ko-KR", "ar", "zh"), Locale::Ko);
        assert_eq!(Locale::choose("", "ar", "zh"), Locale::Ar);
        assert_eq!(
            Locale::choose("fr", "de", "fr;q=0.9, zh-CN;q=0.8"),
            Locale::Zh
        );
        assert_eq!(Locale::choose("", "", ""), Locale::En);
        assert_eq!(Locale::choose("xx", "", "ja"), Locale::En);
    }

    #[test]
    fn accept_language_is_ranked_by_quality() {
        assert_eq!(
            Locale::from_accept_language("en;q=0.5, ar;q=0.9, ko"),
            Some(Locale::Ko)
        );
        assert_eq!(Locale::from_accept_language("ar;q=0, en"), Some(Locale::En));
        assert_eq!(Locale::from_accept_language("fr"), None);
    }
}
