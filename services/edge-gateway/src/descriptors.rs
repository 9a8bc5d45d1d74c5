//! The descriptor pool the gateway transcodes with, and what it reads from it: `google.api.http`
//! rules and the proto comments (for OpenAPI descriptions).

use keel_proto::google::api::HttpRule;
use prost_reflect::{DescriptorPool, MethodDescriptor, Value};

/// The extension carrying a method's HTTP rule.
pub const HTTP_EXTENSION: &str = "google.api.http";

/// Every proto of `proto/`, with custom options (the `google.api.http` rules) and comments.
pub const FILE_DESCRIPTOR_SET: &[u8] = keel_proto::FILE_DESCRIPTOR_SET;

/// Every proto of the platform, plus `extra` encoded `FileDescriptorSet`s (protos not built into
/// this binary).
pub fn pool(extra: &[&[u8]]) -> Result<DescriptorPool, prost_reflect::DescriptorError> {
    let mut pool = DescriptorPool::decode(FILE_DESCRIPTOR_SET)?;
    for set in extra {
        pool.decode_file_descriptor_set(*set)?;
    }
    Ok(pool)
}

/// The method's `google.api.http` rule, if it has one.
pub fn http_rule(pool: &DescriptorPool, method: &MethodDescriptor) -> Option<HttpRule> {
    let extension = pool.get_extension_by_name(HTTP_EXTENSION)?;
    let options = method.options();
    if !options.has_extension(&extension) {
        return None;
    }
    match options.get_extension(&extension).as_ref() {
        Value::Message(rule) => match rule.transcode_to::<HttpRule>() {
            Ok(rule) => Some(rule),
            Err(err) => {
                tracing::warn!(method = method.full_name(), error = %err, "unreadable google.api.http rule");
                None
            }
        },
        _ => None,
    }
}

/// The leading comment of the element at `path` in `file` (source info is kept by the build).
pub fn comment(file: &prost_reflect::FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let location = info
        .location
        .iter()
        .find(|location| location.path == path)?;
    let text = location.leading_comments.as_deref()?.trim();
    (!text.is_empty()).then(|| text.lines().map(str::trim).collect::<Vec<_>>().join("\n"))
}
