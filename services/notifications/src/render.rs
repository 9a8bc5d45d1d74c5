//! Messages in the recipient's language, with Project Fluent: one `.ftl` file per language under
//! `templates/`, compiled into the binary. Every kind of message is a group of Fluent messages
//! sharing a prefix: `<kind>-subject` (also the inbox title), `<kind>-body`, and optionally
//! `<kind>-action` (the label of the link) and `<kind>-note` (e.g. when a link expires). Plural
//! forms are Fluent selectors on a number argument, resolved with each language's CLDR rules.
//!
//! A message missing in a language falls back to English (and a test checks that none is
//! missing). Arguments are plain text: the HTML body escapes everything Fluent produced, so a
//! display name or a task title can never inject markup, and links are placed by this module,
//! never by a translation.

use std::collections::HashMap;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};

use crate::domain::Locale;

/// The Fluent sources, per language.
pub const SOURCES: [(Locale, &str); 4] = [
    (Locale::Ar, include_str!("templates/ar.ftl")),
    (Locale::En, include_str!("templates/en.ftl")),
    (Locale::Zh, include_str!("templates/zh.ftl")),
    (Locale::Ko, include_str!("templates/ko.ftl")),
];

/// One argument of a message.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Arg {
    Number(i64),
    Text(String),
}

impl From<&str> for Arg {
    fn from(value: &str) -> Self {
        Arg::Text(value.to_owned())
    }
}

impl From<String> for Arg {
    fn from(value: String) -> Self {
        Arg::Text(value)
    }
}

impl From<i64> for Arg {
    fn from(value: i64) -> Self {
        Arg::Number(value)
    }
}

/// What a message says, before it is put into a language: its kind and arguments. Serialised
/// into email jobs, so it must never hold a secret (links with tokens are made at send time).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Content {
    pub kind: String,
    pub args: Vec<(String, Arg)>,
}

impl Content {
    pub fn new(kind: &str) -> Content {
        Content {
            kind: kind.to_owned(),
            args: Vec::new(),
        }
    }

    pub fn arg(mut self, name: &str, value: impl Into<Arg>) -> Content {
        self.args.push((name.to_owned(), value.into()));
        self
    }
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedEmail {
    pub locale: Locale,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The compiled bundles of every language. Build once, share (`Send + Sync`).
pub struct Renderer {
    bundles: HashMap<Locale, FluentBundle<FluentResource>>,
    texts: HashMap<Locale, &'static str>,
}

impl Renderer {
    /// Parse every language's file. A syntax error in a template is a bug caught by the tests,
    /// so it fails loudly here.
    pub fn new() -> Result<Renderer, keel_kernel::Error> {
        Renderer::from_sources(&SOURCES)
    }

    /// A renderer of other sources (tests: a language missing a message).
    pub fn from_sources(
        sources: &[(Locale, &'static str)],
    ) -> Result<Renderer, keel_kernel::Error> {
        let mut bundles = HashMap::new();
        let mut texts = HashMap::new();
        for &(locale, source) in sources {
            texts.insert(locale, source);
            let resource = FluentResource::try_new(source.to_owned()).map_err(|(_, errors)| {
                keel_kernel::Error::internal(anyhow::anyhow!(
                    "templates/{locale}.ftl does not parse: {errors:?}"
                ))
            })?;
            let lang: unic_langid::LanguageIdentifier = locale
                .tag()
                .parse()
                .map_err(|err| keel_kernel::Error::internal(anyhow::anyhow!("{err}")))?;
            let mut bundle = FluentBundle::new_concurrent(vec![lang]);
            // Unicode isolation marks keep a Latin name from reordering an Arabic sentence; the
            // left-to-right languages need none, and their text stays byte-for-byte searchable.
            bundle.set_use_isolating(locale.is_rtl());
            bundle.add_resource(resource).map_err(|errors| {
                keel_kernel::Error::internal(anyhow::anyhow!(
                    "templates/{locale}.ftl defines a message twice: {errors:?}"
                ))
            })?;
            bundles.insert(locale, bundle);
        }
        Ok(Renderer { bundles, texts })
    }

    /// The message ids of one language's file.
    pub fn message_ids(&self, locale: Locale) -> Vec<String> {
        let source = self.texts.get(&locale).copied().unwrap_or_default();
        source
            .lines()
            .filter_map(|line| {
                let (id, _) = line.split_once(" =")?;
                let id = id.trim_end();
                (!id.is_empty()
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                .then(|| id.to_owned())
            })
            .collect()
    }

    /// Whether `id` exists in `locale` itself (no fallback).
    pub fn has(&self, locale: Locale, id: &str) -> bool {
        self.bundles
            .get(&locale)
            .is_some_and(|bundle| bundle.has_message(id))
    }

    /// One message in `locale`, else in English; None when English lacks it too.
    pub fn text(&self, locale: Locale, id: &str, args: &[(String, Arg)]) -> Option<String> {
        let locale = if self.has(locale, id) {
            locale
        } else {
            Locale::En
        };
        let bundle = self.bundles.get(&locale)?;
        let pattern = bundle.get_message(id)?.value()?;
        let mut fluent_args = FluentArgs::new();
        for (name, value) in args {
            match value {
                Arg::Number(n) => fluent_args.set(name.as_str(), FluentValue::from(*n)),
                Arg::Text(t) => fluent_args.set(name.as_str(), FluentValue::from(t.as_str())),
            }
        }
        let mut errors = Vec::new();
        let text = bundle.format_pattern(pattern, Some(&fluent_args), &mut errors);
        if !errors.is_empty() {
            tracing::warn!(id, %locale, ?errors, "a template referenced a missing argument");
        }
        Some(text.into_owned())
    }

    /// The inbox title and body of `content` in `locale`.
    pub fn inbox(&self, locale: Locale, content: &Content) -> (String, String) {
        let subject = self
            .text(locale, &format!("{}-subject", content.kind), &content.args)
            .unwrap_or_else(|| content.kind.clone());
        let body = self
            .text(locale, &format!("{}-body", content.kind), &content.args)
            .unwrap_or_default();
        (subject, body)
    }

    /// The email of `content` in `locale`: subject, plain text and HTML (right to left for
    /// Arabic), with the action link (if any) and an optional list of lines (a digest's items).
    pub fn email(
        &self,
        locale: Locale,
        content: &Content,
        link: Option<&str>,
        lines: &[String],
    ) -> RenderedEmail {
        let args = &content.args;
        let kind = &content.kind;
        let (subject, body) = self.inbox(locale, content);
        let greeting = self
            .text(locale, "email-greeting", args)
            .unwrap_or_default();
        let action = self.text(locale, &format!("{kind}-action"), args);
        let note = self.text(locale, &format!("{kind}-note"), args);
        let footer = self.text(locale, "email-footer", args).unwrap_or_default();

        let mut text = format!("{greeting}\n\n{body}\n");
        for line in lines {
            text.push_str(&format!("\n- {line}"));
        }
        if !lines.is_empty() {
            text.push('\n');
        }
        if let Some(link) = link {
            let label = action.clone().unwrap_or_default();
            text.push_str(&format!("\n{label}:\n{link}\n"));
        }
        if let Some(note) = &note {
            text.push_str(&format!("\n{note}\n"));
        }
        text.push_str(&format!("\n--\n{footer}\n"));

        let dir = if locale.is_rtl() { "rtl" } else { "ltr" };
        let align = if locale.is_rtl() { "right" } else { "left" };
        let mut html = format!(
            "<!DOCTYPE html>\n<html lang=\"{lang}\" dir=\"{dir}\">\n<head><meta charset=\"utf-8\">\
             <title>{title}</title></head>\n<body dir=\"{dir}\" style=\"font-family: sans-serif; \
             text-align: {align};\">\n<p>{greeting}</p>\n<p>{body}</p>\n",
            lang = locale.tag(),
            title = escape(&subject),
            greeting = escape(&greeting),
            body = escape(&body),
        );
        if !lines.is_empty() {
            html.push_str("<ul>\n");
            for line in lines {
                html.push_str(&format!("<li>{}</li>\n", escape(line)));
            }
            html.push_str("</ul>\n");
        }
        if let Some(link) = link {
            html.push_str(&format!(
                "<p><a href=\"{href}\">{label}</a></p>\n",
                href = escape(link),
                label = escape(action.as_deref().unwrap_or(link)),
            ));
        }
        if let Some(note) = &note {
            html.push_str(&format!("<p><small>{}</small></p>\n", escape(note)));
        }
        html.push_str(&format!(
            "<hr><p><small>{}</small></p>\n</body>\n</html>\n",
            escape(&footer)
        ));
        RenderedEmail {
            locale,
            subject,
            text,
            html,
        }
    }
}

/// HTML-escape text (element content and quoted attribute values).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renderer() -> Renderer {
        Renderer::new().expect("templates parse")
    }

    #[test]
    fn every_message_id_exists_in_all_four_languages() {
        let renderer = renderer();
        let english = renderer.message_ids(Locale::En);
        assert!(english.len() > 20, "the English file lists the messages");
        let mut missing = Vec::new();
        for locale in Locale::ALL {
            for id in &english {
                if !renderer.has(locale, id) {
                    missing.push(format!("{locale}: {id}"));
                }
            }
            // A message only a translation has is dead: English is the reference.
            for id in renderer.message_ids(locale) {
                if !renderer.has(Locale::En, &id) {
                    missing.push(format!("en (only in {locale}): {id}"));
                }
            }
        }
        assert!(missing.is_empty(), "missing translations: {missing:#?}");
    }

    #[test]
    fn plurals_follow_each_languages_rules() {
        let renderer = renderer();
        let content = |n: i64| Content::new("digest").arg("count", n).arg("name", "Ana");
        let en = |n| renderer.inbox(Locale::En, &content(n)).0;
        assert!(en(1).contains("1 notification") && !en(1).contains("notifications"));
        assert!(en(3).contains("3 notifications"));
        let ar = |n| renderer.inbox(Locale::Ar, &content(n)).0;
        // Arabic has distinct forms for two, a few (3-10) and many (11-99).
        assert_ne!(ar(2), ar(3));
        assert_ne!(ar(3), ar(11));
        assert_ne!(ar(1), ar(2));
    }

    #[test]
    fn arabic_html_is_right_to_left_and_others_left_to_right() {
        let renderer = renderer();
        let content = Content::new("verify-email")
            .arg("name", "Ana")
            .arg("hours", 24);
        let ar = renderer.email(Locale::Ar, &content, Some("http://x/verify"), &[]);
        assert!(ar.html.contains("dir=\"rtl\"") && ar.html.contains("lang=\"ar\""));
        let ko = renderer.email(Locale::Ko, &content, Some("http://x/verify"), &[]);
        assert!(ko.html.contains("dir=\"ltr\"") && ko.html.contains("lang=\"ko\""));
        assert_ne!(ar.subject, ko.subject);
    }

    #[test]
    fn arguments_cannot_inject_markup() {
        let renderer = renderer();
        let content = Content::new("task-assigned")
            .arg("name", "<b>Eve</b>")
            .arg("task", "<script>alert(1)</script>");
        let email = renderer.email(Locale::En, &content, Some("http://x/t?a=1&b=2"), &[]);
        assert!(!email.html.contains("<script>"));
        assert!(email.html.contains("&lt;script&gt;"));
        assert!(email.html.contains("a=1&amp;b=2"));
        assert!(email.text.contains("<script>alert(1)</script>"));
    }

    #[test]
    fn a_missing_translation_falls_back_to_english() {
        let renderer = Renderer::from_sources(&[
            (Locale::En, "greeting = Hello\nfarewell = Goodbye\n"),
            (Locale::Ko, "greeting = 안녕하세요\n"),
        ])
        .expect("parses");
        assert_eq!(
            renderer.text(Locale::Ko, "greeting", &[]).as_deref(),
            Some("안녕하세요")
        );
        assert_eq!(
            renderer.text(Locale::Ko, "farewell", &[]).as_deref(),
            Some("Goodbye")
        );
        assert!(renderer.text(Locale::Ko, "no-such-message", &[]).is_none());
    }
}
