//! Full-text search text for Postgres's `simple` configuration, computed once for every service.
//!
//! `simple` splits on spaces and punctuation with no stemming, which serves Arabic and other
//! spaced scripts as written, but keeps a run of Chinese, Japanese or Korean characters as one
//! token, so a word inside it is never found. The stored document therefore gets the characters
//! and character bigrams of every CJK run appended, and a query's CJK runs become their bigrams (a
//! single character as itself); with `plainto_tsquery` every term must match.

/// Whether `c` belongs to a script written without spaces between words (Han, kana, Hangul).
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0x1100..=0x11FF    // Hangul jamo
        | 0x3130..=0x318F    // Hangul compatibility jamo
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0x20000..=0x2FFFF) // CJK extensions B..
}

/// `text` split into runs of CJK characters and runs of everything else, in order.
fn runs(text: &str) -> Vec<(bool, Vec<char>)> {
    let mut runs: Vec<(bool, Vec<char>)> = Vec::new();
    for c in text.chars() {
        let cjk = is_cjk(c);
        match runs.last_mut() {
            Some((kind, run)) if *kind == cjk => run.push(c),
            _ => runs.push((cjk, vec![c])),
        }
    }
    runs
}

fn bigrams(run: &[char]) -> impl Iterator<Item = String> + '_ {
    run.windows(2).map(|pair| pair.iter().collect())
}

/// The text to store for `to_tsvector('simple', ..)`: the parts as written, then the characters
/// and bigrams of every CJK run in them.
pub fn document(parts: &[&str]) -> String {
    let text = parts.join(" ");
    let mut out = text.clone();
    for (_, run) in runs(&text).into_iter().filter(|(cjk, _)| *cjk) {
        for c in &run {
            out.push(' ');
            out.push(*c);
        }
        for gram in bigrams(&run) {
            out.push(' ');
            out.push_str(&gram);
        }
    }
    out
}

/// The words to give `plainto_tsquery('simple', ..)`: the query's other text as typed, each CJK
/// run as its bigrams (a single character as itself). None for a query with no words.
pub fn query(text: &str) -> Option<String> {
    let mut words: Vec<String> = Vec::new();
    for (cjk, run) in runs(text) {
        if !cjk || run.len() == 1 {
            words.push(run.iter().collect());
        } else {
            words.extend(bigrams(&run));
        }
    }
    let joined = words.join(" ");
    let words: Vec<&str> = joined.split_whitespace().collect();
    (!words.is_empty()).then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cjk_runs_are_indexed_as_characters_and_bigrams() {
        let doc = document(&["北京烤鸭", "회의를 준비"]);
        for gram in ["北", "鸭", "北京", "京烤", "烤鸭", "회의"] {
            assert!(doc.split(' ').any(|w| w == gram), "{gram} in {doc}");
        }
    }

    #[test]
    fn queries_turn_cjk_runs_into_bigrams_and_keep_other_words() {
        assert_eq!(query("烤鸭").as_deref(), Some("烤鸭"));
        assert_eq!(query("北京烤鸭").as_deref(), Some("北京 京烤 烤鸭"));
        assert_eq!(query("red 한국어").as_deref(), Some("red 한국 국어"));
        assert_eq!(query("تقرير الربع").as_deref(), Some("تقرير الربع"));
        assert_eq!(query("报"), Some("报".to_owned()));
        assert_eq!(query("   "), None);
    }
}
