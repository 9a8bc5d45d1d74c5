//! `local`: the built-in DEVELOPMENT provider. It runs no model. It answers deterministically with
//! an extractive summary: the context sentences (system messages, which is where retrieved
//! memories go) that share the most terms with the last user message, or an echo of that message
//! when none does. It streams word by word, stops at `max_tokens` (LENGTH), and reports no usage,
//! so the gateway counts its tokens with the real tokenizer (`counted_by = tokenizer`). It exists
//! so that `make run` answers with no network and no key, and so the whole metered path (quota,
//! usage, events, guardrails, memory) can be exercised locally.

use std::collections::HashSet;

use futures::future::BoxFuture;
use futures::stream::StreamExt;

use super::{EventStream, Provider, ProviderError, ProviderEvent, ProviderRequest};
use crate::domain::completion::last_user_message;
use crate::domain::{ChatMessage, ChatRole, FinishReason, SearchTerms, tokens};

pub struct Local;

fn terms(text: &str) -> HashSet<String> {
    let terms = SearchTerms::of(text);
    terms
        .words
        .into_iter()
        .filter(|w| w.chars().count() >= 3)
        .chain(terms.ngrams)
        .collect()
}

/// The answer `local` gives to `messages`.
pub fn answer(messages: &[ChatMessage]) -> String {
    let question = last_user_message(messages).trim();
    let wanted = terms(question);
    let mut sentences: Vec<(usize, usize, String)> = Vec::new();
    for message in messages.iter().filter(|m| m.role == ChatRole::System) {
        for line in message.content.lines() {
            let line = line.trim().trim_start_matches("- ").trim();
            for sentence in line.split_inclusive(['.', '!', '?', '。', '！', '？']) {
                let sentence = sentence.trim();
                if sentence.is_empty() {
                    continue;
                }
                let overlap = terms(sentence).intersection(&wanted).count();
                if overlap > 0 {
                    sentences.push((overlap, sentences.len(), sentence.to_owned()));
                }
            }
        }
    }
    if sentences.is_empty() {
        return format!("(local development provider) You said: {question}");
    }
    sentences.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    sentences.truncate(2);
    sentences.sort_by_key(|s| s.1);
    let summary: Vec<String> = sentences.into_iter().map(|s| s.2).collect();
    format!(
        "(local development provider) From memory: {}",
        summary.join(" ")
    )
}

/// `text` in streamable pieces: each word with the whitespace before it.
fn pieces(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    for c in text.chars() {
        if c.is_whitespace() && in_word {
            pieces.push(std::mem::take(&mut current));
            in_word = false;
        } else if !c.is_whitespace() {
            in_word = true;
        }
        current.push(c);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// The events of an answer under a `max_tokens` budget.
pub fn events(text: &str, max_tokens: u32) -> Vec<ProviderEvent> {
    let budget = i64::from(max_tokens);
    let mut used = 0;
    let mut events = Vec::new();
    for piece in pieces(text) {
        let cost = tokens::count(&piece);
        if used + cost > budget {
            events.push(ProviderEvent::Finish(FinishReason::Length));
            return events;
        }
        used += cost;
        events.push(ProviderEvent::Delta(piece));
    }
    events.push(ProviderEvent::Finish(FinishReason::Stop));
    events
}

impl Provider for Local {
    fn start(
        &self,
        request: ProviderRequest,
    ) -> BoxFuture<'static, Result<EventStream, ProviderError>> {
        Box::pin(async move {
            let text = answer(&request.messages);
            let events = events(&text, request.max_tokens);
            let stream = futures::stream::iter(events).then(|event| async move {
                // A real stream: each word is its own message to the client.
                tokio::task::yield_now().await;
                Ok(event)
            });
            Ok(stream.boxed())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_summarises_the_matching_context_sentence() {
        let messages = vec![
            ChatMessage::new(
                ChatRole::System,
                "Relevant memories:\n- Refunds are issued within 30 days. Shipping is free.",
            ),
            ChatMessage::new(ChatRole::User, "How long do refunds take?"),
        ];
        assert_eq!(
            answer(&messages),
            "(local development provider) From memory: Refunds are issued within 30 days."
        );
    }

    #[test]
    fn it_echoes_without_context_and_respects_max_tokens() {
        let messages = vec![ChatMessage::new(ChatRole::User, "one two three four five")];
        let text = answer(&messages);
        assert!(text.ends_with("You said: one two three four five"));
        let events = events(&text, 3);
        assert_eq!(
            events.last(),
            Some(&ProviderEvent::Finish(FinishReason::Length))
        );
        let produced: String = events
            .iter()
            .filter_map(|e| match e {
                ProviderEvent::Delta(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert!(tokens::count(&produced) <= 3);
    }
}
