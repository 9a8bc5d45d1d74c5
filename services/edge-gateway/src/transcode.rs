//! REST/JSON <-> protobuf for one binding, by the `google.api.http` rules:
//!
//! - path variables set their fields (`{tenant_id}`, `{task.id}`, `{name=projects/*}`);
//! - `body: "*"` takes every other field from the JSON body, and there are no query parameters;
//! - `body: "field"` takes that field from the body and the rest from the query;
//! - no body: everything not in the path comes from the query (`a.b=1`, repeated keys for
//!   repeated fields);
//! - the response is the output message, or its `response_body` field.
//!
//! JSON is ProtoJSON (prost-reflect): lowerCamelCase out, either name in, int64 as strings, enums
//! by name. Nothing is silently dropped: an unknown body field, an unknown query parameter, a path
//! field repeated in the body are each a 400 naming the field.

use std::borrow::Cow;

use base64::Engine as _;
use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage,
    SerializeOptions, Value,
};

use crate::problem::Problem;
use crate::router::{Binding, BodyRule};
use crate::template::{Variable, decode_all};

/// Unknown fields and enum names are errors, not silently dropped.
const DESERIALIZE: DeserializeOptions = DeserializeOptions::new().deny_unknown_fields(true);

/// Well-known types whose JSON form is a string or a scalar, so they can be path or query values.
const SCALAR_MESSAGES: &[&str] = &[
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
    "google.protobuf.DoubleValue",
    "google.protobuf.FloatValue",
    "google.protobuf.Int64Value",
    "google.protobuf.UInt64Value",
    "google.protobuf.Int32Value",
    "google.protobuf.UInt32Value",
    "google.protobuf.BoolValue",
    "google.protobuf.StringValue",
    "google.protobuf.BytesValue",
];

pub fn is_scalar_message(message: &MessageDescriptor) -> bool {
    SCALAR_MESSAGES.contains(&message.full_name())
}

/// A field by its proto name or its JSON name: ProtoJSON parsers accept both.
pub fn field_by_name(message: &MessageDescriptor, name: &str) -> Option<FieldDescriptor> {
    message
        .get_field_by_name(name)
        .or_else(|| message.get_field_by_json_name(name))
}

/// What the client sent, once routed.
pub struct Incoming<'a> {
    /// The path variables' decoded values, from [`crate::template::PathTemplate::captures`].
    pub captures: &'a [(&'a Variable, String)],
    pub query: Option<&'a str>,
    pub body: &'a [u8],
    pub headers: &'a http::HeaderMap,
}

/// The request message for `binding`.
pub fn request(binding: &Binding, incoming: &Incoming<'_>) -> Result<DynamicMessage, Problem> {
    let input = binding.route.method.input();
    if let BodyRule::Raw { field, headers } = &binding.body {
        return raw_request(binding, incoming, field, headers);
    }
    let body = trim_ascii(incoming.body);
    let mut message = match &binding.body {
        BodyRule::None if !body.is_empty() => {
            return Err(Problem::bad_request("this endpoint takes no request body"));
        }
        BodyRule::None => DynamicMessage::new(input),
        BodyRule::All if body.is_empty() => DynamicMessage::new(input),
        BodyRule::All => parse_message(input, body, "")?,
        BodyRule::Raw { .. } => DynamicMessage::new(input),
        BodyRule::Field(field) => {
            let mut message = DynamicMessage::new(input.clone());
            if !body.is_empty() {
                let value = parse_body_field(&input, field, body)?;
                message.set_field(field, value);
            }
            message
        }
    };
    for ((variable, text), chain) in incoming.captures.iter().zip(&binding.path_fields) {
        let name = json_path(chain);
        if is_set(&message, chain) {
            return Err(Problem::invalid_field(
                name,
                "is set by the URL path; leave it out of the body",
            ));
        }
        let Some(leaf) = chain.last() else { continue };
        let value = parse_scalar(&leaf.kind(), text).map_err(|description| {
            Problem::invalid_field(variable.dotted(), format!("in the URL path {description}"))
        })?;
        set(&mut message, chain, value);
    }
    if let Some(query) = incoming.query.filter(|q| !q.is_empty()) {
        apply_query(binding, &mut message, query)?;
    }
    Ok(message)
}

/// A raw route's message: the body's exact bytes, the mapped headers, the path variables.
fn raw_request(
    binding: &Binding,
    incoming: &Incoming<'_>,
    body_field: &FieldDescriptor,
    headers: &[(http::HeaderName, FieldDescriptor)],
) -> Result<DynamicMessage, Problem> {
    if incoming.query.is_some_and(|q| !q.is_empty()) {
        return Err(Problem::bad_request(
            "this endpoint takes no query parameters",
        ));
    }
    let mut message = DynamicMessage::new(binding.route.method.input());
    message.set_field(
        body_field,
        Value::Bytes(bytes::Bytes::copy_from_slice(incoming.body)),
    );
    for (header, field) in headers {
        if let Some(value) = incoming.headers.get(header) {
            let text = value
                .to_str()
                .map_err(|_| Problem::invalid_field(header.as_str(), "must be visible ASCII"))?;
            message.set_field(field, Value::String(text.to_owned()));
        }
    }
    for ((variable, text), chain) in incoming.captures.iter().zip(&binding.path_fields) {
        let Some(leaf) = chain.last() else { continue };
        let value = parse_scalar(&leaf.kind(), text).map_err(|description| {
            Problem::invalid_field(variable.dotted(), format!("in the URL path {description}"))
        })?;
        set(&mut message, chain, value);
    }
    Ok(message)
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// Deserialize `body` as a `message`; errors name the field at fault, under `prefix`.
fn parse_message(
    message: MessageDescriptor,
    body: &[u8],
    prefix: &str,
) -> Result<DynamicMessage, Problem> {
    let mut json = serde_json::Deserializer::from_slice(body);
    let mut track = serde_path_to_error::Track::new();
    let parsed = DynamicMessage::deserialize_with_options(
        message,
        serde_path_to_error::Deserializer::new(&mut json, &mut track),
        &DESERIALIZE,
    );
    match parsed {
        Ok(parsed) => {
            json.end().map_err(|err| malformed(&err))?;
            Ok(parsed)
        }
        Err(err) => Err(json_error(&err, &track.path().to_string(), prefix)),
    }
}

/// The value of a named body field. A message field is the whole body; a repeated, map or scalar
/// field is read as the value of that field in a one-field object, so ProtoJSON rules apply alike.
fn parse_body_field(
    input: &MessageDescriptor,
    field: &FieldDescriptor,
    body: &[u8],
) -> Result<Value, Problem> {
    if let Kind::Message(inner) = field.kind()
        && !field.is_list()
        && !field.is_map()
    {
        return parse_message(inner, body, field.json_name()).map(Value::Message);
    }
    let mut wrapped = Vec::with_capacity(body.len() + field.json_name().len() + 5);
    wrapped.extend_from_slice(b"{\"");
    wrapped.extend_from_slice(field.json_name().as_bytes());
    wrapped.extend_from_slice(b"\":");
    wrapped.extend_from_slice(body);
    wrapped.push(b'}');
    let mut message = parse_message(input.clone(), &wrapped, "")?;
    Ok(message
        .take_field(field)
        .unwrap_or_else(|| Value::default_value_for_field(field)))
}

fn malformed(err: &serde_json::Error) -> Problem {
    Problem::bad_request(format!("the request body is not valid JSON: {err}"))
}

/// A serde error as a 400: a syntax error says where; a data error names the field.
fn json_error(err: &serde_json::Error, path: &str, prefix: &str) -> Problem {
    use serde_json::error::Category;
    if matches!(
        err.classify(),
        Category::Syntax | Category::Eof | Category::Io
    ) {
        return malformed(err);
    }
    let message = strip_position(&err.to_string());
    let at = join(prefix, if path == "." { "" } else { path });
    if let Some(name) = quoted_after(&message, "unrecognized field name ") {
        return Problem::invalid_field(join(&at, name), "unknown field");
    }
    if let Some(value) = quoted_after(&message, "unrecognized enum value ") {
        return Problem::invalid_field(at, format!("`{value}` is not a value of this enum"));
    }
    if at.is_empty() {
        if message.contains("expected a map") {
            return Problem::bad_request("the request body must be a JSON object");
        }
        return Problem::bad_request(format!("invalid request body: {message}"));
    }
    Problem::invalid_field(at, message)
}

/// `... at line 1 column 7` is noise once the field is named.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) if message[at..].contains(" column ") => message[..at].to_owned(),
        _ => message.to_owned(),
    }
}

fn quoted_after<'m>(message: &'m str, marker: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(marker)?;
    rest.strip_prefix('\'')?.strip_suffix('\'')
}

fn join(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) => format!("{prefix}.{path}"),
    }
}

/// `a.b` by JSON names.
fn json_path(chain: &[FieldDescriptor]) -> String {
    chain
        .iter()
        .map(FieldDescriptor::json_name)
        .collect::<Vec<_>>()
        .join(".")
}

fn is_set(message: &DynamicMessage, chain: &[FieldDescriptor]) -> bool {
    match chain {
        [] => false,
        [field] => message.has_field(field),
        [field, rest @ ..] => {
            message.has_field(field)
                && match message.get_field(field).as_ref() {
                    Value::Message(inner) => is_set(inner, rest),
                    _ => false,
                }
        }
    }
}

/// Set (or, for a repeated leaf, append) `value` at `chain`, creating parent messages.
fn set(message: &mut DynamicMessage, chain: &[FieldDescriptor], value: Value) {
    let Some((leaf, parents)) = chain.split_last() else {
        return;
    };
    let mut current = message;
    for field in parents {
        match current.get_field_mut(field).as_message_mut() {
            Some(inner) => current = inner,
            None => return,
        }
    }
    if leaf.is_list() {
        if let Some(list) = current.get_field_mut(leaf).as_list_mut() {
            list.push(value);
        }
    } else {
        current.set_field(leaf, value);
    }
}

/// Query parameters into the fields not bound by the path or the body.
fn apply_query(
    binding: &Binding,
    message: &mut DynamicMessage,
    query: &str,
) -> Result<(), Problem> {
    let input = binding.route.method.input();
    let mut seen: Vec<String> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode_query(raw_name)
            .map_err(|d| Problem::bad_request(format!("a query parameter name {d}")))?;
        let value = decode_query(raw_value).map_err(|d| Problem::invalid_field(name.clone(), d))?;
        if matches!(binding.body, BodyRule::All) {
            return Err(Problem::invalid_field(
                name,
                "unknown query parameter (this endpoint takes its fields in the JSON body)",
            ));
        }
        let chain =
            resolve_query(&input, &name).map_err(|d| Problem::invalid_field(name.clone(), d))?;
        if let BodyRule::Field(body) = &binding.body
            && chain[0] == *body
        {
            return Err(Problem::invalid_field(
                name,
                "is the request body; it cannot be a query parameter",
            ));
        }
        let bound = binding.path_fields.iter().any(|path| {
            let n = path.len().min(chain.len());
            path[..n] == chain[..n]
        });
        if bound {
            return Err(Problem::invalid_field(
                name,
                "is set by the URL path; it cannot be a query parameter",
            ));
        }
        let Some(leaf) = chain.last() else { continue };
        if !leaf.is_list() {
            let key = json_path(&chain);
            if seen.contains(&key) {
                return Err(Problem::invalid_field(
                    name,
                    "is given more than once but is not repeated",
                ));
            }
            seen.push(key);
        }
        let value = parse_scalar(&leaf.kind(), &value)
            .map_err(|d| Problem::invalid_field(name.clone(), d))?;
        set(message, &chain, value);
    }
    Ok(())
}

/// `+` is a space in query strings; then percent-decoding, to UTF-8.
fn decode_query(raw: &str) -> Result<String, String> {
    if raw.contains('+') {
        decode_all(&raw.replace('+', " "))
    } else {
        decode_all(raw)
    }
}

/// The field chain a query parameter name (`a.b`, by proto or JSON names) sets.
fn resolve_query(input: &MessageDescriptor, name: &str) -> Result<Vec<FieldDescriptor>, String> {
    let unknown = || "unknown query parameter".to_owned();
    let parts: Vec<&str> = name.split('.').collect();
    let mut chain = Vec::with_capacity(parts.len());
    let mut message = input.clone();
    for (depth, part) in parts.iter().enumerate() {
        let field = field_by_name(&message, part).ok_or_else(unknown)?;
        let leaf = depth + 1 == parts.len();
        if field.is_map() {
            return Err("map fields cannot be set from the query string".into());
        }
        match field.kind() {
            Kind::Message(inner) if is_scalar_message(&inner) && !leaf => return Err(unknown()),
            Kind::Message(inner) if is_scalar_message(&inner) => {}
            Kind::Message(inner) => {
                if leaf || field.is_list() {
                    return Err(
                        "is a message; set its fields as separate parameters (`name.field=...`)"
                            .into(),
                    );
                }
                message = inner;
            }
            _ if !leaf => return Err(unknown()),
            _ => {}
        }
        chain.push(field);
    }
    Ok(chain)
}

/// A path or query value as a field value of `kind`.
pub fn parse_scalar(kind: &Kind, text: &str) -> Result<Value, String> {
    let bad = |what: &str| format!("`{text}` is not {what}");
    Ok(match kind {
        Kind::Double => Value::F64(parse_float(text).ok_or_else(|| bad("a number"))?),
        Kind::Float => {
            let v = parse_float(text).ok_or_else(|| bad("a number"))?;
            if v.is_finite() && v.abs() > f64::from(f32::MAX) {
                return Err(bad("a 32-bit float"));
            }
            Value::F32(v as f32)
        }
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Value::I32(text.parse().map_err(|_| bad("a 32-bit integer"))?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Value::I64(text.parse().map_err(|_| bad("a 64-bit integer"))?)
        }
        Kind::Uint32 | Kind::Fixed32 => Value::U32(
            text.parse()
                .map_err(|_| bad("an unsigned 32-bit integer"))?,
        ),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(
            text.parse()
                .map_err(|_| bad("an unsigned 64-bit integer"))?,
        ),
        Kind::Bool => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(bad("`true` or `false`")),
        },
        Kind::String => Value::String(text.to_owned()),
        Kind::Bytes => {
            let engines = [
                base64::engine::general_purpose::STANDARD,
                base64::engine::general_purpose::URL_SAFE,
                base64::engine::general_purpose::STANDARD_NO_PAD,
                base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            let bytes = engines
                .iter()
                .find_map(|engine| engine.decode(text).ok())
                .ok_or_else(|| bad("base64"))?;
            Value::Bytes(bytes.into())
        }
        Kind::Enum(enumeration) => {
            let value = enumeration
                .get_value_by_name(text)
                .or_else(|| text.parse().ok().and_then(|n| enumeration.get_value(n)))
                .ok_or_else(|| {
                    let names: Vec<String> =
                        enumeration.values().map(|v| v.name().to_owned()).collect();
                    format!("`{text}` is not one of {}", names.join(", "))
                })?;
            Value::EnumNumber(value.number())
        }
        Kind::Message(message) => Value::Message(parse_scalar_message(message, text)?),
    })
}

fn parse_scalar_message(message: &MessageDescriptor, text: &str) -> Result<DynamicMessage, String> {
    if let Some(value_field) = message.get_field_by_name("value")
        && message.full_name().ends_with("Value")
        && message.package_name() == "google.protobuf"
    {
        let mut wrapper = DynamicMessage::new(message.clone());
        wrapper.set_field(&value_field, parse_scalar(&value_field.kind(), text)?);
        return Ok(wrapper);
    }
    DynamicMessage::deserialize_with_options(
        message.clone(),
        serde_json::Value::String(text.to_owned()),
        &DESERIALIZE,
    )
    .map_err(|err| format!("`{text}` is not a valid {}: {err}", message.name()))
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => text.parse::<f64>().ok().filter(|v| v.is_finite()),
    }
}

/// ProtoJSON output options: the spec's defaults (lowerCamelCase, 64-bit integers as strings,
/// enums by name, default values omitted).
pub fn serialize_options() -> SerializeOptions {
    SerializeOptions::new()
}

/// The response body: the message, or its `response_body` field.
pub fn response(
    response_body: Option<&FieldDescriptor>,
    message: &DynamicMessage,
) -> Result<Vec<u8>, serde_json::Error> {
    let Some(field) = response_body else {
        return to_json(message);
    };
    if let Kind::Message(_) = field.kind()
        && !field.is_list()
        && !field.is_map()
    {
        return match message.get_field(field) {
            Cow::Borrowed(Value::Message(inner)) => to_json(inner),
            Cow::Owned(Value::Message(inner)) => to_json(&inner),
            _ => Ok(b"{}".to_vec()),
        };
    }
    // A repeated, map or scalar field: serialise a message holding only it, defaults included,
    // and take the field's value out.
    let mut only = DynamicMessage::new(message.descriptor());
    only.set_field(field, message.get_field(field).into_owned());
    let mut out = serde_json::Serializer::new(Vec::new());
    only.serialize_with_options(&mut out, &serialize_options().skip_default_fields(false))?;
    let object: serde_json::Value = serde_json::from_slice(&out.into_inner())?;
    serde_json::to_vec(
        &object
            .get(field.json_name())
            .cloned()
            .unwrap_or(serde_json::Value::Null),
    )
}

pub fn to_json(message: &DynamicMessage) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = serde_json::Serializer::new(Vec::with_capacity(128));
    message.serialize_with_options(&mut out, &serialize_options())?;
    Ok(out.into_inner())
}

/// A violation's field path from a service (proto names, `tenant.display_name`) in JSON names
/// (`tenant.displayName`), when it resolves against `message`; otherwise unchanged.
pub fn json_field_path(message: &MessageDescriptor, path: &str) -> String {
    let mut out = Vec::new();
    let mut current = Some(message.clone());
    for part in path.split('.') {
        let (name, index) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        let Some(field) = current.as_ref().and_then(|m| field_by_name(m, name)) else {
            return path.to_owned();
        };
        out.push(format!("{}{index}", field.json_name()));
        current = match field.kind() {
            Kind::Message(inner) => Some(inner),
            _ => None,
        };
    }
    out.join(".")
}
