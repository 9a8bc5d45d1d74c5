//! Guardrails: personal data redacted from the prompt before any provider sees it (emails, phone
//! numbers, card numbers that pass the Luhn check, IBANs that pass the mod-97 check), blocked
//! terms, a maximum prompt size; and, when configured, the same checks on the generated text.
//!
//! A check returns what it found (the rules that hit, for metrics) and, for a refusal, the rule
//! that blocked: the caller answers CONTENT_FILTER, logs the call as BLOCKED and charges nothing.

use std::sync::LazyLock;

use regex::Regex;

use crate::settings::GuardrailRules;

/// A guardrail rule, as named in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    Email,
    Phone,
    Card,
    Iban,
    BlockedTerm,
    PromptSize,
    /// Personal data in the generated text (output checks block rather than redact: a streamed
    /// chunk has already left when the next one shows what it was part of).
    OutputPersonalData,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Email => "email",
            Rule::Phone => "phone",
            Rule::Card => "card",
            Rule::Iban => "iban",
            Rule::BlockedTerm => "blocked_term",
            Rule::PromptSize => "prompt_size",
            Rule::OutputPersonalData => "output_personal_data",
        }
    }
}

/// What a check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inspection {
    /// Every rule that matched, once per match.
    pub hits: Vec<Rule>,
    /// The rule that refused the text, if one did.
    pub blocked: Option<Rule>,
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
        .unwrap_or_else(|err| panic!("email pattern: {err}"))
});
static IBAN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b")
        .unwrap_or_else(|err| panic!("iban pattern: {err}"))
});
static CARD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b[0-9](?:[ -]?[0-9]){12,18}\b")
        .unwrap_or_else(|err| panic!("card pattern: {err}"))
});
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\+|\b)[0-9(][0-9 ().-]{5,20}[0-9]\b")
        .unwrap_or_else(|err| panic!("phone pattern: {err}"))
});

/// The rules of one tenant.
#[derive(Debug, Clone)]
pub struct Guardrails {
    rules: GuardrailRules,
    blocked_terms: Vec<String>,
}

impl Guardrails {
    pub fn new(rules: GuardrailRules) -> Guardrails {
        let blocked_terms = rules
            .blocked_terms
            .iter()
            .map(|term| term.trim().to_lowercase())
            .filter(|term| !term.is_empty())
            .collect();
        Guardrails {
            rules,
            blocked_terms,
        }
    }

    pub fn max_prompt_tokens(&self) -> i64 {
        i64::from(self.rules.max_prompt_tokens)
    }

    pub fn checks_output(&self) -> bool {
        self.rules.check_output
    }

    /// Redact personal data in `text` in place; returns the rules that hit.
    pub fn redact(&self, text: &mut String, hits: &mut Vec<Rule>) {
        if self.rules.redact_emails {
            replace_all(text, &EMAIL, "[EMAIL]", Rule::Email, hits, |_| true);
        }
        if self.rules.redact_ibans {
            replace_all(text, &IBAN, "[IBAN]", Rule::Iban, hits, is_valid_iban);
        }
        if self.rules.redact_cards {
            replace_all(text, &CARD, "[CARD]", Rule::Card, hits, passes_luhn);
        }
        if self.rules.redact_phones {
            replace_all(text, &PHONE, "[PHONE]", Rule::Phone, hits, is_phone_number);
        }
    }

    /// The first blocked term `text` contains (case-insensitive).
    pub fn blocked_term(&self, text: &str) -> Option<&str> {
        if self.blocked_terms.is_empty() {
            return None;
        }
        let lower = text.to_lowercase();
        self.blocked_terms
            .iter()
            .find(|term| lower.contains(term.as_str()))
            .map(String::as_str)
    }

    /// Check generated text so far (called at every chunk boundary when output checks are on).
    pub fn inspect_output(&self, text: &str) -> Inspection {
        let mut inspection = Inspection::default();
        if self.blocked_term(text).is_some() {
            inspection.hits.push(Rule::BlockedTerm);
            inspection.blocked = Some(Rule::BlockedTerm);
            return inspection;
        }
        let mut copy = text.to_owned();
        let mut hits = Vec::new();
        self.redact(&mut copy, &mut hits);
        if !hits.is_empty() {
            inspection.hits.push(Rule::OutputPersonalData);
            inspection.blocked = Some(Rule::OutputPersonalData);
        }
        inspection
    }
}

/// Replace every match of `pattern` that `accept` confirms with `label`.
fn replace_all(
    text: &mut String,
    pattern: &Regex,
    label: &str,
    rule: Rule,
    hits: &mut Vec<Rule>,
    accept: fn(&str) -> bool,
) {
    if !pattern.is_match(text) {
        return;
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for found in pattern.find_iter(text) {
        if accept(found.as_str()) {
            out.push_str(&text[last..found.start()]);
            out.push_str(label);
            last = found.end();
            hits.push(rule);
        }
    }
    out.push_str(&text[last..]);
    *text = out;
}

/// The Luhn checksum card numbers carry.
pub fn passes_luhn(candidate: &str) -> bool {
    let digits: Vec<u32> = candidate.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// ISO 13616: move the first four characters to the end, letters to numbers (A = 10), mod 97 = 1.
pub fn is_valid_iban(candidate: &str) -> bool {
    let compact: Vec<char> = candidate.chars().filter(|c| *c != ' ').collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let rearranged = compact[4..].iter().chain(compact[..4].iter());
    let mut remainder: u32 = 0;
    for c in rearranged {
        let value = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

/// A phone number: 9 to 15 digits (E.164's maximum), or 7+ after a `+`.
fn is_phone_number(candidate: &str) -> bool {
    let digits = candidate.chars().filter(char::is_ascii_digit).count();
    let international = candidate.starts_with('+');
    (digits <= 15) && (digits >= 9 || (international && digits >= 7))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(text: &str) -> (String, Vec<Rule>) {
        let guardrails = Guardrails::new(GuardrailRules::default());
        let mut text = text.to_owned();
        let mut hits = Vec::new();
        guardrails.redact(&mut text, &mut hits);
        (text, hits)
    }

    #[test]
    fn each_kind_of_personal_data_is_redacted() {
        let (text, hits) = redacted(
            "Mail jane.doe@example.com, call +44 20 7946 0958, card 4111 1111 1111 1111, \
             IBAN DE89 3704 0044 0532 0130 00.",
        );
        assert_eq!(
            text,
            "Mail [EMAIL], call [PHONE], card [CARD], IBAN [IBAN]."
        );
        assert_eq!(hits, vec![Rule::Email, Rule::Iban, Rule::Card, Rule::Phone]);
    }

    #[test]
    fn numbers_failing_their_checksums_are_left_alone() {
        let (text, _) = redacted("order 4111 1111 1111 1112 and DE00 3704 0044 0532 0130 00");
        assert!(text.contains("4111 1111 1111 1112"), "{text}");
        assert!(text.contains("DE00 3704 0044 0532 0130 00"), "{text}");
    }

    #[test]
    fn dates_and_short_numbers_are_not_phone_numbers() {
        let (text, hits) = redacted("on 2024-01-15 we shipped 1234 units");
        assert_eq!(text, "on 2024-01-15 we shipped 1234 units");
        assert!(hits.is_empty());
    }

    #[test]
    fn blocked_terms_match_case_insensitively() {
        let guardrails = Guardrails::new(GuardrailRules {
            blocked_terms: vec!["Project Falcon".into()],
            ..GuardrailRules::default()
        });
        assert_eq!(
            guardrails.blocked_term("tell me about project falcon"),
            Some("project falcon")
        );
        assert_eq!(guardrails.blocked_term("tell me about falcons"), None);
    }
}
