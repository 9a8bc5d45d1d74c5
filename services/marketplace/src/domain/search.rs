//! Full-text search text, computed in Rust so Postgres's `simple` configuration (no stemming,
//! one language-neutral tokenizer: good for Arabic and mixed text) also finds Chinese, Japanese
//! and Korean words, which are not separated by spaces: every run of CJK characters is indexed
//! as its single characters and its character bigrams, and a query's CJK run is searched as its
//! bigrams (a single character as itself). A query word must all be found (AND).

/// Han, Hiragana, Katakana, Hangul: the scripts written without spaces between words.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xF900..=0xFAFF    // CJK Compatibility Ideographs
        | 0x1100..=0x11FF    // Hangul Jamo
        | 0x3130..=0x318F    // Hangul Compatibility Jamo
        | 0xAC00..=0xD7AF    // Hangul Syllables
        | 0x20000..=0x2FFFF) // CJK Extensions B..F
}

/// Split `text` into runs of CJK characters and the rest.
fn runs(text: &str) -> Vec<(bool, String)> {
    let mut runs: Vec<(bool, String)> = Vec::new();
    for c in text.chars() {
        let cjk = is_cjk(c);
        match runs.last_mut() {
            Some((kind, run)) if *kind == cjk => run.push(c),
            _ => runs.push((cjk, c.to_string())),
        }
    }
    runs
}

fn bigrams(run: &[char]) -> impl Iterator<Item = String> + '_ {
    run.windows(2).map(|pair| pair.iter().collect())
}

/// The text stored for the listing's `simple` tsvector: the title and description as written,
/// plus the unigrams and bigrams of every CJK run.
pub fn document(title: &str, description: &str) -> String {
    let mut out = format!("{title} {description}");
    for (cjk, run) in runs(&format!("{title} {description}")) {
        if !cjk {
            continue;
        }
        let chars: Vec<char> = run.chars().collect();
        for c in &chars {
            out.push(' ');
            out.push(*c);
        }
        for gram in bigrams(&chars) {
            out.push(' ');
            out.push_str(&gram);
        }
    }
    out
}

/// The words to give `plainto_tsquery('simple', ..)`: the query's non-CJK text as is, and each CJK
/// run as its bigrams (or itself, for a single character). None for an empty query.
pub fn query(text: &str) -> Option<String> {
    let mut words: Vec<String> = Vec::new();
    for (cjk, run) in runs(text.trim()) {
        if !cjk {
            words.push(run);
            continue;
        }
        let chars: Vec<char> = run.chars().collect();
        if chars.len() == 1 {
            words.push(run);
        } else {
            words.extend(bigrams(&chars));
        }
    }
    let joined = words.join(" ");
    let trimmed = joined.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cjk_runs_are_indexed_as_characters_and_bigrams() {
        let doc = document("北京烤鸭", "");
        for gram in ["北", "鸭", "北京", "京烤", "烤鸭"] {
            assert!(doc.split(' ').any(|w| w == gram), "{gram} in {doc}");
        }
        assert_eq!(query("烤鸭").as_deref(), Some("烤鸭"));
        assert_eq!(query("北京烤鸭").as_deref(), Some("北京 京烤 烤鸭"));
        assert_eq!(query("red 한국어").as_deref(), Some("red  한국 국어"));
        assert_eq!(query("   "), None);
    }
}
