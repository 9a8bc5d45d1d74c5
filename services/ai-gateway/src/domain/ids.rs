//! The ai-gateway's id newtypes.

keel_kernel::id_type!(
    /// One AI call: the completion's id, its usage record's id, its quota reservation's key and
    /// the event id of its `ai.usage.recorded` event.
    CompletionId, "completion id", v7
);
