//! Tenant memory: validated values, and the search terms and scores behind SearchMemories.
//!
//! Search is full-text, built to serve the platform's four languages with Postgres's `simple`
//! configuration (no stemming dictionary covers Arabic, Chinese and Korean together):
//! - words: the text lower-cased and split at every character that is not a letter or digit
//!   (Arabic also loses its diacritics and its alef variants are unified);
//! - n-grams, computed here: character bigrams of every Chinese/Japanese and Korean run (Chinese
//!   is written without spaces; Korean attaches particles to words, so `회의는` must find
//!   `회의`), and character trigrams of Arabic words (prefixes such as `ال` and attached
//!   pronouns).
//!
//! Both are stored (columns `terms` and `ngrams`, indexed as one `tsvector`). A query selects
//! candidates through the index and is scored here: a cosine between the query's and the
//! memory's term sets (binary vectors), words and n-grams weighted by how many of each the query
//! has, so the score is in [0, 1] (the API promises [-1, 1]; no match is negative here).

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use keel_kernel::{Error, TenantId, Violations};

/// A memory's caller-chosen id: `[a-z0-9-_.]{1,128}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemoryId(String);

impl MemoryId {
    pub fn parse(field: &str, value: &str) -> Result<MemoryId, Error> {
        if value.is_empty() {
            return Err(Error::invalid(field, "is required"));
        }
        if value.len() > 128 {
            return Err(Error::invalid(field, "must be at most 128 characters"));
        }
        if !value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
        {
            return Err(Error::invalid(
                field,
                "may contain only a-z, 0-9, `-`, `_` and `.`",
            ));
        }
        Ok(MemoryId(value.to_owned()))
    }

    /// A stored id (validated when it was written).
    pub fn from_stored(value: String) -> MemoryId {
        MemoryId(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MemoryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A namespace: empty (none) or `[a-z0-9-_.]{1,64}`.
pub fn parse_namespace(field: &str, value: &str) -> Result<String, Error> {
    if value.len() > 64
        || !value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
    {
        return Err(Error::invalid(
            field,
            "must be at most 64 characters of a-z, 0-9, `-`, `_` and `.`",
        ));
    }
    Ok(value.to_owned())
}

const MAX_CONTENT_CHARS: usize = 32_000;
const MAX_METADATA_ENTRIES: usize = 32;

/// A validated PutMemory.
#[derive(Debug, Clone)]
pub struct NewMemory {
    pub tenant: TenantId,
    pub id: MemoryId,
    pub namespace: String,
    pub content: String,
    pub metadata: BTreeMap<String, String>,
    pub required_permission: String,
}

impl NewMemory {
    #[allow(clippy::too_many_arguments)]
    pub fn parse(
        violations: &mut Violations,
        tenant: Option<TenantId>,
        id: &str,
        namespace: &str,
        content: &str,
        metadata: BTreeMap<String, String>,
        required_permission: &str,
    ) -> Option<NewMemory> {
        let id = violations.check(MemoryId::parse("memory_id", id));
        let namespace = violations.check(parse_namespace("memory.namespace", namespace));
        if content.trim().is_empty() {
            violations.add("memory.content", "is required");
        } else if content.chars().count() > MAX_CONTENT_CHARS {
            violations.add(
                "memory.content",
                format!("must be at most {MAX_CONTENT_CHARS} characters"),
            );
        }
        if metadata.len() > MAX_METADATA_ENTRIES
            || metadata
                .iter()
                .any(|(k, v)| k.is_empty() || k.len() > 64 || v.len() > 1024)
        {
            violations.add(
                "memory.metadata",
                "at most 32 entries, keys of 1 to 64 bytes, values of at most 1024 bytes",
            );
        }
        if !required_permission.is_empty() && !is_permission_name(required_permission) {
            violations.add(
                "memory.required_permission",
                "must be a permission name `<context>.<resource>.<action>`",
            );
        }
        Some(NewMemory {
            tenant: tenant?,
            id: id?,
            namespace: namespace?,
            content: content.to_owned(),
            metadata,
            required_permission: required_permission.to_owned(),
        })
    }
}

fn is_permission_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

#[derive(Debug, Clone)]
pub struct Memory {
    pub tenant: TenantId,
    pub id: MemoryId,
    pub namespace: String,
    pub content: String,
    pub metadata: BTreeMap<String, String>,
    pub required_permission: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The searchable form of a text (stored with a memory, computed for a query).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchTerms {
    pub words: Vec<String>,
    pub ngrams: Vec<String>,
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0x20000..=0x2FFFF) // CJK extensions B..
}

fn is_hangul(c: char) -> bool {
    matches!(c as u32, 0xAC00..=0xD7AF | 0x1100..=0x11FF | 0x3130..=0x318F)
}

fn is_arabic(c: char) -> bool {
    matches!(c as u32, 0x0600..=0x06FF | 0x0750..=0x077F | 0xFB50..=0xFDFF | 0xFE70..=0xFEFF)
}

/// Arabic diacritics (harakat, tatweel) carry no meaning for search.
fn is_arabic_mark(c: char) -> bool {
    matches!(c as u32, 0x064B..=0x065F | 0x0670 | 0x0640)
}

/// Unify alef variants and the alef maqsura, as Arabic search engines do.
fn normalize_arabic(c: char) -> char {
    match c {
        'أ' | 'إ' | 'آ' | 'ٱ' => 'ا',
        'ى' => 'ي',
        'ة' => 'ه',
        other => other,
    }
}

impl SearchTerms {
    pub fn of(text: &str) -> SearchTerms {
        let mut terms = SearchTerms::default();
        let lower = text.to_lowercase();
        let mut word = String::new();
        let flush = |word: &mut String, terms: &mut SearchTerms| {
            if !word.is_empty() {
                terms.add_word(word);
                word.clear();
            }
        };
        for c in lower.chars() {
            if is_arabic_mark(c) {
                continue;
            }
            if c.is_alphanumeric() {
                let c = if is_arabic(c) { normalize_arabic(c) } else { c };
                // A change between a CJK run and anything else is a word boundary.
                if let Some(previous) = word.chars().last()
                    && is_cjk(previous) != is_cjk(c)
                {
                    flush(&mut word, &mut terms);
                }
                word.push(c);
            } else {
                flush(&mut word, &mut terms);
            }
        }
        flush(&mut word, &mut terms);
        terms
    }

    fn add_word(&mut self, word: &str) {
        let chars: Vec<char> = word.chars().collect();
        if chars.iter().all(|c| is_cjk(*c)) {
            // Chinese/Japanese: no spaces, so bigrams (a single character stands alone).
            if chars.len() == 1 {
                self.ngrams.push(word.to_owned());
            }
            for pair in chars.windows(2) {
                self.ngrams.push(pair.iter().collect());
            }
            return;
        }
        self.words.push(word.to_owned());
        if chars.iter().any(|c| is_hangul(*c)) && chars.len() >= 2 {
            for pair in chars.windows(2) {
                self.ngrams.push(pair.iter().collect());
            }
        } else if chars.iter().any(|c| is_arabic(*c)) && chars.len() >= 3 {
            for triple in chars.windows(3) {
                self.ngrams.push(triple.iter().collect());
            }
        }
    }

    /// Space-separated words, for the `terms` column.
    pub fn words_text(&self) -> String {
        self.words.join(" ")
    }

    /// Space-separated n-grams, for the `ngrams` column.
    pub fn ngrams_text(&self) -> String {
        self.ngrams.join(" ")
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty() && self.ngrams.is_empty()
    }

    /// A `to_tsquery('simple', ..)` matching any term: words of four characters or more also
    /// match as prefixes (`invoice` finds `invoices`; `simple` does not stem). Every term is
    /// letters and digits only (see [`SearchTerms::of`]), so quoting it is safe.
    pub fn tsquery(&self) -> String {
        let mut seen = HashSet::new();
        let mut parts = Vec::new();
        for word in &self.words {
            if seen.insert(word.as_str()) {
                if word.chars().count() >= 4 {
                    parts.push(format!("'{word}':*"));
                } else {
                    parts.push(format!("'{word}'"));
                }
            }
        }
        for ngram in &self.ngrams {
            if seen.insert(ngram.as_str()) {
                parts.push(format!("'{ngram}'"));
            }
        }
        parts.join(" | ")
    }

    /// Similarity of a memory (its stored terms) to this query, in [0, 1].
    pub fn score(&self, words_text: &str, ngrams_text: &str) -> f64 {
        let query_words: HashSet<&str> = self.words.iter().map(String::as_str).collect();
        let query_ngrams: HashSet<&str> = self.ngrams.iter().map(String::as_str).collect();
        let doc_words: HashSet<&str> = words_text.split_whitespace().collect();
        let doc_ngrams: HashSet<&str> = ngrams_text.split_whitespace().collect();
        let word_matches = query_words
            .iter()
            .filter(|q| {
                doc_words.contains(*q)
                    || (q.chars().count() >= 4 && doc_words.iter().any(|d| d.starts_with(*q)))
            })
            .count();
        let ngram_matches = query_ngrams
            .iter()
            .filter(|q| doc_ngrams.contains(*q))
            .count();
        let cosine = |matches: usize, query: usize, doc: usize| {
            if query == 0 || doc == 0 {
                0.0
            } else {
                matches as f64 / ((query as f64) * (doc as f64)).sqrt()
            }
        };
        let (qw, qn) = (query_words.len() as f64, query_ngrams.len() as f64);
        if qw + qn == 0.0 {
            return 0.0;
        }
        let words = cosine(word_matches, query_words.len(), doc_words.len());
        let ngrams = cosine(ngram_matches, query_ngrams.len(), doc_ngrams.len());
        ((qw * words + qn * ngrams) / (qw + qn)).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_is_split_into_lowercase_words() {
        let terms = SearchTerms::of("Refunds: within 30 days!");
        assert_eq!(terms.words, vec!["refunds", "within", "30", "days"]);
        assert!(terms.ngrams.is_empty());
    }

    #[test]
    fn chinese_runs_become_bigrams() {
        let terms = SearchTerms::of("退款政策很简单");
        assert!(terms.words.is_empty());
        assert!(terms.ngrams.contains(&"退款".to_owned()));
        assert!(terms.ngrams.contains(&"政策".to_owned()));
    }

    #[test]
    fn korean_words_keep_their_bigrams_so_particles_do_not_hide_them() {
        let stored = SearchTerms::of("회의는 금요일입니다");
        let query = SearchTerms::of("회의");
        assert!(query.score(&stored.words_text(), &stored.ngrams_text()) > 0.0);
    }

    #[test]
    fn arabic_loses_diacritics_and_matches_through_trigrams() {
        let stored = SearchTerms::of("سياسةُ الاسترداد");
        let query = SearchTerms::of("استرداد");
        assert!(query.score(&stored.words_text(), &stored.ngrams_text()) > 0.0);
    }

    #[test]
    fn scores_stay_between_zero_and_one() {
        let stored = SearchTerms::of("the same words");
        let query = SearchTerms::of("the same words");
        let score = query.score(&stored.words_text(), &stored.ngrams_text());
        assert!((score - 1.0).abs() < 1e-9, "{score}");
        let none = SearchTerms::of("other").score(&stored.words_text(), &stored.ngrams_text());
        assert_eq!(none, 0.0);
    }

    #[test]
    fn memory_ids_are_checked() {
        assert!(MemoryId::parse("memory_id", "refund-policy.v2_1").is_ok());
        assert!(MemoryId::parse("memory_id", "Refund").is_err());
        assert!(MemoryId::parse("memory_id", "").is_err());
        assert!(MemoryId::parse("memory_id", &"a".repeat(129)).is_err());
    }
}
