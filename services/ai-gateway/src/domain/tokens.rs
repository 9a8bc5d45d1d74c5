//! Token counting with a real tokenizer (OpenAI's `cl100k_base` BPE): what the gateway reserves
//! against the quota before a call, and what it charges when a provider reports no usage (the
//! `local` provider, a cut stream).

use crate::domain::ChatMessage;

/// Tokens of `text` (no special tokens: user text never contains them on purpose).
pub fn count(text: &str) -> i64 {
    if text.is_empty() {
        return 0;
    }
    tiktoken_rs::cl100k_base_singleton()
        .encode_ordinary(text)
        .len() as i64
}

/// Tokens of a chat prompt, as OpenAI bills chat models: each message costs its role and content
/// plus 3 tokens of framing, and the reply is primed with 3 more.
pub fn count_prompt(messages: &[ChatMessage]) -> i64 {
    const PER_MESSAGE: i64 = 3;
    const REPLY_PRIMING: i64 = 3;
    messages
        .iter()
        .map(|m| PER_MESSAGE + count(m.role.as_str()) + count(&m.content))
        .sum::<i64>()
        + REPLY_PRIMING
}

/// Load the vocabulary now (it takes a while unoptimised) rather than in the first request.
pub fn warm_up() {
    let _ = count("warm up");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_the_cl100k_token_counts() {
        assert_eq!(count(""), 0);
        assert_eq!(count("hello world"), 2);
        assert!(count("你好，世界") >= 3);
    }
}
