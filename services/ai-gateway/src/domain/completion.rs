//! A completion request as the domain sees it: validated messages and limits.

use keel_kernel::{Error, TenantId};

/// Who authored a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatRole {
    System,
    User,
    Assistant,
}

impl ChatRole {
    /// The wire name every provider API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatRole::System => "system",
            ChatRole::User => "user",
            ChatRole::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: ChatRole, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
        }
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ContentFilter,
}

/// A validated Complete/StreamComplete request.
#[derive(Debug, Clone)]
pub struct CompletionInput {
    pub tenant: TenantId,
    /// The configured model name (the default already applied).
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: u32,
    pub temperature: Option<f32>,
    pub memory_namespace: Option<String>,
}

impl CompletionInput {
    /// The last user message: what memories are retrieved for and what `local` answers.
    pub fn last_user_message(&self) -> &str {
        last_user_message(&self.messages)
    }
}

pub fn last_user_message(messages: &[ChatMessage]) -> &str {
    messages
        .iter()
        .rev()
        .find(|m| m.role == ChatRole::User)
        .map(|m| m.content.as_str())
        .unwrap_or_default()
}

/// `temperature`: 0 means the model's default; otherwise 0 to 2.
pub fn parse_temperature(field: &str, value: f32) -> Result<Option<f32>, Error> {
    if value == 0.0 {
        return Ok(None);
    }
    if !(0.0..=2.0).contains(&value) || value.is_nan() {
        return Err(Error::invalid(field, "must be between 0 and 2"));
    }
    Ok(Some(value))
}
