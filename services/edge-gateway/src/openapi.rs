//! OpenAPI 3.1, generated from the same compiled route table and descriptors the gateway
//! transcodes with, so it documents exactly what the gateway accepts: path parameters are not
//! repeated in bodies, query parameters are the fields left over (flattened as `a.b`), bodies
//! refuse unknown properties, 64-bit integers are strings, enums list their names, and every
//! error is the problem+json document.

use std::collections::{BTreeMap, HashSet};

use keel_kernel::ErrorCode;
use prost_reflect::{DescriptorPool, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use crate::descriptors::comment;
use crate::router::{Binding, BodyRule, Router};
use crate::template::OpenApiParam;
use crate::transcode::is_scalar_message;

/// Nested messages are flattened into query parameters this deep at most.
const QUERY_DEPTH: usize = 3;

/// The whole document.
pub fn document(router: &Router, _pool: &DescriptorPool, service: &str) -> Value {
    let mut schemas = Schemas::default();
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut tags: BTreeMap<String, Value> = BTreeMap::new();
    let mut operation_ids: HashSet<String> = HashSet::new();
    for binding in router.bindings() {
        let route = &binding.route;
        let grpc_service = route.method.parent_service();
        tags.entry(grpc_service.full_name().to_owned())
            .or_insert_with(|| {
                let mut tag = json!({ "name": grpc_service.full_name() });
                if let Some(text) = comment(&grpc_service.parent_file(), grpc_service.path()) {
                    tag["description"] = Value::String(text);
                }
                tag
            });
        let mut id = route.id.clone();
        if binding.additional > 0 {
            id = format!("{id}_{}", binding.additional + 1);
        }
        while !operation_ids.insert(id.clone()) {
            id.push('_');
        }
        let (path, path_params) = binding.template.openapi();
        let operation = operation(binding, id, &path_params, &mut schemas);
        paths
            .entry(path)
            .or_default()
            .insert(binding.http_method.as_str().to_ascii_lowercase(), operation);
    }
    let mut components_schemas = schemas.done;
    components_schemas.insert("Problem".into(), problem_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "keel API",
            "version": "v1",
            "description": DESCRIPTION,
            "x-generated-by": service,
        },
        "servers": [{ "url": "/" }],
        "tags": tags.into_values().collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "schemas": components_schemas,
            "responses": { "Problem": {
                "description": "An error, as RFC 7807 problem details.",
                "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } },
            } },
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token from `POST /v1/auth/login` (or `/v1/auth/switch-tenant` for tenant-scoped calls).",
                },
                "apiKeyAuth": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Api-Key",
                    "description": "A tenant API key (`Authorization: ApiKey <secret>` works too).",
                },
            },
        },
    })
}

const DESCRIPTION: &str = "REST/JSON API of the keel platform, transcoded by the edge gateway from the \
gRPC services' `google.api.http` annotations.\n\nJSON is ProtoJSON: lowerCamelCase names (the proto \
names are accepted in requests too), 64-bit integers as strings, enums by name, timestamps in RFC 3339. \
Unknown fields and unknown query parameters are refused with 400.\n\nEvery error is \
`application/problem+json` with the platform's `code` (VALIDATION, AUTHN, AUTHZ, NOT_FOUND, CONFLICT, FAILED_PRECONDITION, ABORTED, \
RATE_LIMIT, UNAVAILABLE, INTERNAL), the `requestId` and, for invalid fields, `violations`.\n\nServer-streaming \
methods answer as Server-Sent Events with `Accept: text/event-stream`, otherwise as newline-delimited JSON.";

fn operation(
    binding: &Binding,
    id: String,
    path_params: &[OpenApiParam],
    schemas: &mut Schemas,
) -> Value {
    let route = &binding.route;
    let method = &route.method;
    let mut op = Map::new();
    op.insert("operationId".into(), Value::String(id));
    op.insert("tags".into(), json!([method.parent_service().full_name()]));
    if let Some(text) = comment(&method.parent_file(), method.path()) {
        let summary = text
            .split(". ")
            .next()
            .unwrap_or(&text)
            .lines()
            .collect::<Vec<_>>()
            .join(" ");
        op.insert(
            "summary".into(),
            Value::String(summary.trim_end_matches('.').to_owned()),
        );
        op.insert("description".into(), Value::String(text));
    }
    // Declared by the proto (`keel.v1.access`): told to readers in prose and to tools as an
    // extension, so a client can see up front which role or API key scope a call needs.
    if let Some(permission) = &route.permission {
        let note = format!("Requires the permission `{permission}`.");
        let description = match op.get("description").and_then(Value::as_str) {
            Some(text) => format!("{text}\n\n{note}"),
            None => note,
        };
        op.insert("description".into(), Value::String(description));
        op.insert(
            "x-keel-permission".into(),
            Value::String(permission.clone()),
        );
    }
    let input = method.input();
    let mut parameters = Vec::new();
    for param in path_params {
        let variable = &binding.template.variables[param.variable];
        let Some(leaf) = binding.path_fields[param.variable].last() else {
            continue;
        };
        let whole = variable.is_single_segment(&binding.template);
        let mut schema = if whole {
            kind_schema(&leaf.kind(), schemas)
        } else {
            json!({ "type": "string" })
        };
        if schema.get("type") == Some(&json!("string")) && schema.get("format").is_none() {
            schema["minLength"] = json!(1);
        }
        let mut parameter =
            json!({ "name": param.name, "in": "path", "required": true, "schema": schema });
        let mut description = field_comment(leaf).unwrap_or_default();
        if !whole {
            let note = if param.rest {
                format!(
                    "The rest of `{}`; encode `/` within it as `%2F`.",
                    variable.dotted()
                )
            } else {
                format!("Part of `{}` (`{}`).", variable.dotted(), variable.pattern)
            };
            description = if description.is_empty() {
                note
            } else {
                format!("{description}\n\n{note}")
            };
        }
        if !description.is_empty() {
            parameter["description"] = Value::String(description);
        }
        parameters.push(parameter);
    }
    if let BodyRule::Raw { headers, .. } = &binding.body {
        for (header, field) in headers {
            let mut parameter = json!({
                "name": header.as_str(), "in": "header", "required": false,
                "schema": { "type": "string" },
            });
            if let Some(description) = field_comment(field) {
                parameter["description"] = Value::String(description);
            }
            parameters.push(parameter);
        }
    } else if !matches!(binding.body, BodyRule::All) {
        let mut excluded: Vec<Vec<FieldDescriptor>> = binding.path_fields.clone();
        if let BodyRule::Field(field) = &binding.body {
            excluded.push(vec![field.clone()]);
        }
        query_parameters(&input, &mut Vec::new(), &excluded, schemas, &mut parameters);
    }
    if !parameters.is_empty() {
        op.insert("parameters".into(), Value::Array(parameters));
    }
    let body_schema = match &binding.body {
        BodyRule::None => None,
        BodyRule::All => {
            let bound: Vec<&FieldDescriptor> = binding
                .path_fields
                .iter()
                .filter_map(|c| c.first())
                .collect();
            if bound.is_empty() {
                Some(schemas.reference(&input))
            } else {
                Some(message_schema(&input, &bound, schemas))
            }
        }
        BodyRule::Field(field) => Some(field_schema(field, schemas)),
        BodyRule::Raw { .. } => None,
    };
    if let BodyRule::Raw { field, .. } = &binding.body {
        let mut body = json!({
            "required": true,
            "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } },
        });
        if let Some(description) = field_comment(field) {
            body["description"] = Value::String(description);
        }
        op.insert("requestBody".into(), body);
    }
    if let Some(schema) = body_schema {
        op.insert(
            "requestBody".into(),
            json!({ "required": false, "content": { "application/json": { "schema": schema } } }),
        );
    }
    let output = match &binding.response_body {
        Some(field) => field_schema(field, schemas),
        None => schemas.reference(&method.output()),
    };
    let ok = if route.streaming() {
        json!({
            "description": "A stream of messages: Server-Sent Events (`data: <json>` per message, then `event: done`; a failure is a final `event: error` with a problem document) with `Accept: text/event-stream`, otherwise newline-delimited JSON (a failure is a final `{\"error\": <problem>}` line).",
            "content": {
                "text/event-stream": { "schema": { "type": "string" } },
                "application/x-ndjson": { "schema": { "type": "string" } },
            },
            "x-message-schema": output,
        })
    } else {
        json!({ "description": "OK", "content": { "application/json": { "schema": output } } })
    };
    let mut responses = Map::new();
    responses.insert("200".into(), ok);
    let mut errors = vec!["400", "404", "429", "500", "503", "504"];
    if !route.public {
        errors.extend(["401", "403"]);
    } else if matches!(binding.body, BodyRule::Raw { .. }) {
        // The method authenticates the sender itself (a signature over the body).
        errors.push("401");
    }
    if !matches!(binding.body, BodyRule::None) {
        errors.extend(["413", "415"]);
    }
    errors.push("409");
    errors.sort_unstable();
    for status in errors {
        responses.insert(
            status.into(),
            json!({ "$ref": "#/components/responses/Problem" }),
        );
    }
    responses.insert(
        "default".into(),
        json!({ "$ref": "#/components/responses/Problem" }),
    );
    op.insert("responses".into(), Value::Object(responses));
    let security = if route.public {
        json!([])
    } else {
        json!([{ "bearerAuth": [] }, { "apiKeyAuth": [] }])
    };
    op.insert("security".into(), security);
    Value::Object(op)
}

/// Every scalar leaf reachable from `message` that is neither bound by the path nor the body, as
/// `a.b` query parameters.
fn query_parameters(
    message: &MessageDescriptor,
    prefix: &mut Vec<FieldDescriptor>,
    excluded: &[Vec<FieldDescriptor>],
    schemas: &mut Schemas,
    out: &mut Vec<Value>,
) {
    for field in message.fields() {
        prefix.push(field.clone());
        let blocked = excluded.iter().any(|path| {
            let n = path.len().min(prefix.len());
            path[..n] == prefix[..n]
        });
        if !blocked && !field.is_map() {
            match field.kind() {
                Kind::Message(inner) if !is_scalar_message(&inner) => {
                    // The depth limit also ends recursive messages.
                    if !field.is_list() && prefix.len() < QUERY_DEPTH {
                        query_parameters(&inner, prefix, excluded, schemas, out);
                    }
                }
                kind => {
                    let name = prefix
                        .iter()
                        .map(FieldDescriptor::json_name)
                        .collect::<Vec<_>>()
                        .join(".");
                    let item = kind_schema(&kind, schemas);
                    let schema = if field.is_list() {
                        json!({ "type": "array", "items": item })
                    } else {
                        item
                    };
                    let mut parameter =
                        json!({ "name": name, "in": "query", "required": false, "schema": schema });
                    if field.is_list() {
                        parameter["style"] = json!("form");
                        parameter["explode"] = json!(true);
                    }
                    if let Some(text) = field_comment(&field) {
                        parameter["description"] = Value::String(text);
                    }
                    out.push(parameter);
                }
            }
        }
        prefix.pop();
    }
}

#[derive(Default)]
struct Schemas {
    done: Map<String, Value>,
    started: HashSet<String>,
}

impl Schemas {
    /// `$ref` to the component for `message`, generating it the first time.
    fn reference(&mut self, message: &MessageDescriptor) -> Value {
        if let Some(schema) = well_known(message.full_name()) {
            return schema;
        }
        let name = message.full_name().to_owned();
        if self.started.insert(name.clone()) {
            let schema = message_schema(message, &[], self);
            self.done.insert(name.clone(), schema);
        }
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    fn enumeration(&mut self, enumeration: &EnumDescriptor) -> Value {
        let name = enumeration.full_name().to_owned();
        if self.started.insert(name.clone()) {
            let values: Vec<String> = enumeration.values().map(|v| v.name().to_owned()).collect();
            let mut schema = json!({ "type": "string", "enum": values });
            if let Some(text) = comment(&enumeration.parent_file(), enumeration.path()) {
                schema["description"] = Value::String(text);
            }
            self.done.insert(name.clone(), schema);
        }
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }
}

/// An object schema for `message`, leaving out `skip` (fields the path sets).
fn message_schema(
    message: &MessageDescriptor,
    skip: &[&FieldDescriptor],
    schemas: &mut Schemas,
) -> Value {
    let mut properties = Map::new();
    for field in message.fields() {
        if skip.contains(&&field) {
            continue;
        }
        properties.insert(field.json_name().to_owned(), field_schema(&field, schemas));
    }
    let mut schema = json!({
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    });
    if skip.is_empty() {
        schema["title"] = Value::String(message.name().to_owned());
    }
    if let Some(text) = comment(&message.parent_file(), message.path()) {
        schema["description"] = Value::String(text);
    }
    schema
}

fn field_schema(field: &FieldDescriptor, schemas: &mut Schemas) -> Value {
    let mut schema = if field.is_map() {
        let value = match field.kind() {
            Kind::Message(entry) => entry.map_entry_value_field(),
            _ => return json!({ "type": "object" }),
        };
        json!({ "type": "object", "additionalProperties": kind_schema(&value.kind(), schemas) })
    } else if field.is_list() {
        json!({ "type": "array", "items": kind_schema(&field.kind(), schemas) })
    } else {
        kind_schema(&field.kind(), schemas)
    };
    let text = field_comment(field);
    if schema.get("$ref").is_some() {
        // A `$ref` may have siblings in 3.1; keep descriptions but nothing that changes validation.
        if let Some(text) = text {
            schema["description"] = Value::String(text);
        }
        return schema;
    }
    if let Some(text) = text {
        if text.starts_with("Output only") {
            schema["readOnly"] = json!(true);
        }
        schema["description"] = Value::String(text);
    }
    schema
}

fn field_comment(field: &FieldDescriptor) -> Option<String> {
    comment(&field.parent_file(), field.path())
}

fn kind_schema(kind: &Kind, schemas: &mut Schemas) -> Value {
    match kind {
        Kind::Double => json!({ "type": "number", "format": "double" }),
        Kind::Float => {
            json!({ "type": "number", "format": "float", "minimum": -3.4e38, "maximum": 3.4e38 })
        }
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            json!({ "type": "integer", "format": "int32", "minimum": i32::MIN, "maximum": i32::MAX })
        }
        Kind::Uint32 | Kind::Fixed32 => {
            json!({ "type": "integer", "format": "int64", "minimum": 0, "maximum": u32::MAX })
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            json!({ "type": "string", "format": "int64", "pattern": "^-?[0-9]{1,18}$" })
        }
        Kind::Uint64 | Kind::Fixed64 => {
            json!({ "type": "string", "format": "uint64", "pattern": "^[0-9]{1,19}$" })
        }
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::String => json!({ "type": "string" }),
        Kind::Bytes => json!({ "type": "string", "format": "byte", "contentEncoding": "base64" }),
        Kind::Enum(enumeration) => schemas.enumeration(enumeration),
        Kind::Message(message) => schemas.reference(message),
    }
}

/// Well-known types have their own JSON forms.
fn well_known(name: &str) -> Option<Value> {
    let nullable = |schema: Value| {
        let mut schema = schema;
        if let Some(Value::String(t)) = schema.get("type").cloned() {
            schema["type"] = json!([t, "null"]);
        }
        schema
    };
    Some(match name {
        "google.protobuf.Timestamp" => json!({ "type": "string", "format": "date-time" }),
        "google.protobuf.Duration" => {
            json!({ "type": "string", "pattern": "^-?[0-9]{1,12}(\\.[0-9]{1,9})?s$" })
        }
        "google.protobuf.FieldMask" => json!({
            "type": "string",
            "description": "Comma-separated field paths, in lowerCamelCase.",
            "pattern": "^([a-zA-Z][a-zA-Z0-9]*(\\.[a-zA-Z][a-zA-Z0-9]*)*(,[a-zA-Z][a-zA-Z0-9]*(\\.[a-zA-Z][a-zA-Z0-9]*)*)*)?$",
        }),
        "google.protobuf.Empty" => json!({ "type": "object", "additionalProperties": false }),
        "google.protobuf.Struct" => json!({ "type": "object", "additionalProperties": true }),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({ "type": "array" }),
        "google.protobuf.Any" => json!({
            "type": "object",
            "properties": { "@type": { "type": "string" } },
            "required": ["@type"],
            "additionalProperties": true,
        }),
        "google.protobuf.DoubleValue" => nullable(json!({ "type": "number", "format": "double" })),
        "google.protobuf.FloatValue" => nullable(json!({ "type": "number", "format": "float" })),
        "google.protobuf.Int64Value" => {
            nullable(json!({ "type": "string", "format": "int64", "pattern": "^-?[0-9]{1,18}$" }))
        }
        "google.protobuf.UInt64Value" => {
            nullable(json!({ "type": "string", "format": "uint64", "pattern": "^[0-9]{1,19}$" }))
        }
        "google.protobuf.Int32Value" => nullable(json!({ "type": "integer", "format": "int32" })),
        "google.protobuf.UInt32Value" => {
            nullable(json!({ "type": "integer", "format": "int64", "minimum": 0 }))
        }
        "google.protobuf.BoolValue" => nullable(json!({ "type": "boolean" })),
        "google.protobuf.StringValue" => nullable(json!({ "type": "string" })),
        "google.protobuf.BytesValue" => nullable(json!({ "type": "string", "format": "byte" })),
        _ => return None,
    })
}

fn problem_schema() -> Value {
    json!({
        "type": "object",
        "description": "RFC 7807 problem details, with the platform's error code.",
        "required": ["type", "title", "status", "detail", "code", "requestId"],
        "properties": {
            "type": { "type": "string", "description": "A URI reference explaining the code." },
            "title": { "type": "string", "description": "The HTTP status's reason phrase." },
            "status": { "type": "integer", "minimum": 400, "maximum": 599 },
            "detail": { "type": "string", "description": "What went wrong, for humans." },
            "code": {
                "type": "string",
                "enum": ErrorCode::ALL.map(ErrorCode::as_str),
            },
            "requestId": { "type": "string", "description": "The request's id, also in the `X-Request-Id` header." },
            "violations": {
                "type": "array",
                "description": "One entry per invalid field.",
                "items": {
                    "type": "object",
                    "required": ["field", "description"],
                    "properties": {
                        "field": { "type": "string", "description": "The field's path, e.g. `tenant.slug`." },
                        "description": { "type": "string" },
                    },
                },
            },
        },
    })
}
