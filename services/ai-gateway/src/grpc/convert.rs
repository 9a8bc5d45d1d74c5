//! Proto <-> domain. Requests become domain values here, reporting every invalid field at once;
//! domain values become proto messages through `From`.

use keel_kernel::grpc::timestamp;
use keel_kernel::{Error, TenantId, Violations};
use keel_proto::ai::v1 as pb;

use crate::domain::completion::parse_temperature;
use crate::domain::memory::parse_namespace;
use crate::domain::{
    ChatMessage, ChatRole, CompletionInput, FinishReason, Memory, NewMemory, Quota,
};
use crate::providers::Router;
use crate::settings::Settings;

/// Complete/StreamComplete's fields, validated, with the configured defaults applied.
pub fn completion_input(
    request: &pb::CompleteRequest,
    tenant: TenantId,
    settings: &Settings,
    router: &Router,
) -> Result<CompletionInput, Error> {
    let mut violations = Violations::default();
    let model = if request.model.is_empty() {
        settings.default_model.clone()
    } else {
        request.model.clone()
    };
    if !router.has_model(&model) {
        violations.add("model", format!("`{model}` is not a configured model"));
    }
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    for (i, message) in request.messages.iter().enumerate() {
        let role = match pb::ChatRole::try_from(message.role) {
            Ok(pb::ChatRole::System) => Some(ChatRole::System),
            Ok(pb::ChatRole::User) => Some(ChatRole::User),
            Ok(pb::ChatRole::Assistant) => Some(ChatRole::Assistant),
            _ => {
                violations.add(
                    format!("messages[{i}].role"),
                    "must be SYSTEM, USER or ASSISTANT",
                );
                None
            }
        };
        if message.content.is_empty() {
            violations.add(format!("messages[{i}].content"), "is required");
        }
        if let Some(role) = role {
            messages.push(ChatMessage::new(role, message.content.clone()));
        }
    }
    if !request.prompt.is_empty() {
        messages.push(ChatMessage::new(ChatRole::User, request.prompt.clone()));
    }
    if request.messages.is_empty() && request.prompt.is_empty() {
        violations.add("prompt", "either `messages` or `prompt` is required");
    }
    let max_tokens = match request.max_tokens {
        0 => settings.default_max_tokens,
        n if n < 0 => {
            violations.add("max_tokens", "must not be negative");
            0
        }
        n if n as u32 > settings.max_tokens_limit => {
            violations.add(
                "max_tokens",
                format!("must be at most {}", settings.max_tokens_limit),
            );
            0
        }
        n => n as u32,
    };
    let temperature = violations.check(parse_temperature("temperature", request.temperature));
    let namespace = violations.check(parse_namespace(
        "memory_namespace",
        &request.memory_namespace,
    ));
    violations.finish()?;
    Ok(CompletionInput {
        tenant,
        model,
        messages,
        max_tokens,
        temperature: temperature.flatten(),
        memory_namespace: namespace.filter(|n| !n.is_empty()),
    })
}

/// PutMemory's fields, validated.
pub fn new_memory(request: pb::PutMemoryRequest) -> Result<NewMemory, Error> {
    let mut violations = Violations::default();
    let tenant = violations.check(TenantId::parse_field("tenant_id", &request.tenant_id));
    let memory = request.memory.unwrap_or_default();
    let parsed = NewMemory::parse(
        &mut violations,
        tenant,
        &request.memory_id,
        &memory.namespace,
        &memory.content,
        memory.metadata.into_iter().collect(),
        &memory.required_permission,
    );
    violations.finish()?;
    parsed.ok_or_else(|| Error::internal(anyhow::anyhow!("validated fields missing")))
}

impl From<&Memory> for pb::Memory {
    fn from(memory: &Memory) -> pb::Memory {
        pb::Memory {
            id: memory.id.to_string(),
            tenant_id: memory.tenant.to_string(),
            namespace: memory.namespace.clone(),
            content: memory.content.clone(),
            metadata: memory.metadata.clone().into_iter().collect(),
            required_permission: memory.required_permission.clone(),
            create_time: Some(timestamp(memory.created_at)),
            update_time: Some(timestamp(memory.updated_at)),
        }
    }
}

impl From<&Quota> for pb::Quota {
    fn from(quota: &Quota) -> pb::Quota {
        pb::Quota {
            tenant_id: quota.tenant.to_string(),
            period_start_time: Some(timestamp(quota.period.start)),
            period_end_time: Some(timestamp(quota.period.end)),
            limit_tokens: quota.limit_tokens,
            used_tokens: quota.used_tokens,
            reserved_tokens: quota.reserved_tokens,
            remaining_tokens: quota.remaining(),
        }
    }
}

impl From<FinishReason> for pb::FinishReason {
    fn from(reason: FinishReason) -> pb::FinishReason {
        match reason {
            FinishReason::Stop => pb::FinishReason::Stop,
            FinishReason::Length => pb::FinishReason::Length,
            FinishReason::ContentFilter => pb::FinishReason::ContentFilter,
        }
    }
}
