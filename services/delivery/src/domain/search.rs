//! Full-text search terms. Postgres' `simple` configuration splits on spaces and punctuation,
//! which serves Arabic and other spaced scripts, but keeps a run of Chinese, Japanese or Korean
//! characters as one token, so a word inside it is never found. The indexed text therefore gets
//! the unigrams and bigrams of every CJK run appended, and a query's CJK runs become bigrams
//! (unigrams for a single character), all of which must match.

/// Whether `c` belongs to a script written without spaces between words (Han, kana, Hangul).
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0x1100..=0x11FF    // Hangul jamo
        | 0x3130..=0x318F    // Hangul compatibility jamo
        | 0x20000..=0x2FFFF) // CJK extensions B..
}

/// The runs of consecutive CJK characters in `text`.
fn cjk_runs(text: &str) -> Vec<Vec<char>> {
    let mut runs = Vec::new();
    let mut run = Vec::new();
    for c in text.chars() {
        if is_cjk(c) {
            run.push(c);
        } else if !run.is_empty() {
            runs.push(std::mem::take(&mut run));
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

/// The text stored in `tasks.search_text`: title and description, then the CJK n-grams.
pub fn index_text(title: &str, description: &str) -> String {
    let mut out = format!("{title} {description}");
    for run in cjk_runs(&out.clone()) {
        for c in &run {
            out.push(' ');
            out.push(*c);
        }
        for pair in run.windows(2) {
            out.push(' ');
            out.extend(pair);
        }
    }
    out
}

/// The words of a query for `plainto_tsquery('simple', ..)`: non-CJK words as typed, CJK runs as
/// bigrams (a single character as itself). Every term must match.
pub fn query_text(query: &str) -> String {
    let mut terms: Vec<String> = Vec::new();
    let mut plain = String::new();
    for c in query.chars() {
        plain.push(if is_cjk(c) { ' ' } else { c });
    }
    terms.extend(plain.split_whitespace().map(str::to_owned));
    for run in cjk_runs(query) {
        if run.len() == 1 {
            terms.push(run.iter().collect());
        } else {
            terms.extend(run.windows(2).map(|pair| pair.iter().collect::<String>()));
        }
    }
    terms.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_and_korean_runs_are_indexed_as_characters_and_pairs() {
        let text = index_text("季度报告", "회의를 준비");
        assert!(text.contains(" 报告"));
        assert!(text.contains(" 회의"));
        assert_eq!(query_text("报告"), "报告");
        assert_eq!(query_text("季度报告"), "季度 度报 报告");
        assert_eq!(query_text("تقرير الربع"), "تقرير الربع");
    }
}
