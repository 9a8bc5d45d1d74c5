//! The compiled route table: every `google.api.http` binding of every routed service, in a trie of
//! path segments built once at start.
//!
//! Matching prefers, at each segment, a literal over `*` over `**`, and a binding with a custom
//! verb (`/v1/tenants/{id}:approve`) over reading the `:approve` as part of the last segment. Among
//! the bindings a path matches, the first for the request's HTTP method wins; if the path matches
//! only for other methods the answer is 405 with those methods in `Allow`.

use std::collections::HashMap;
use std::sync::Arc;

use http::Method;
use http::uri::PathAndQuery;
use keel_kernel::contract;
use keel_proto::google::api::HttpRule;
use keel_proto::google::api::http_rule::Pattern;
use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor};

use crate::config::{ConfigError, RateSpec, RawRoute, RouteTable, Source};
use crate::descriptors::http_rule;
use crate::template::{PathTemplate, Segment, decode_all};
use crate::transcode::{field_by_name, is_scalar_message};

/// One routed RPC and the gateway's policy for it.
#[derive(Debug)]
pub struct Route {
    /// `identity.v1.AuthService.Login`.
    pub id: String,
    pub method: MethodDescriptor,
    /// `/identity.v1.AuthService/Login`.
    pub grpc_path: PathAndQuery,
    pub upstream: String,
    /// Callable without credentials, as the method's `keel.v1.access` option declares.
    pub public: bool,
    /// The permission every caller must hold, as the method's `keel.v1.access` option declares
    /// (the upstream's auth layer checks it; the gateway documents it).
    pub permission: Option<String>,
    pub tenant_match: bool,
    /// The module the tenant must have enabled.
    pub module: Option<String>,
    /// Whether the tenant must be ACTIVE (always when there is a module).
    pub active_tenant: bool,
    /// A policy of the route's own, with the name of its buckets.
    pub rate_limit: Option<(Arc<str>, RateSpec)>,
    /// A body limit of the route's own (raw routes), instead of `http.max_body_bytes`.
    pub max_body: Option<usize>,
    /// A stream that may stay quiet for long (a watch): kept alive instead of timed out.
    pub long_lived: bool,
}

impl Route {
    pub fn streaming(&self) -> bool {
        self.method.is_server_streaming()
    }
}

#[derive(Debug, Clone)]
pub enum BodyRule {
    /// No body: fields not in the path come from the query string.
    None,
    /// `body: "*"`: every field not in the path comes from the body; no query parameters.
    All,
    /// `body: "field"`: that field is the body; the rest not in the path comes from the query.
    Field(FieldDescriptor),
    /// A raw route (`raw_routes` in the table): the body's exact bytes go into this `bytes`
    /// field, untouched; the listed headers go into string fields; no query parameters.
    Raw {
        field: FieldDescriptor,
        headers: Vec<(http::HeaderName, FieldDescriptor)>,
    },
}

/// One HTTP binding of a route (its rule or one of its `additional_bindings`).
#[derive(Debug)]
pub struct Binding {
    pub route: Arc<Route>,
    pub http_method: Method,
    pub template: PathTemplate,
    pub body: BodyRule,
    pub response_body: Option<FieldDescriptor>,
    /// The field chain each path variable sets, in the template's variable order.
    pub path_fields: Vec<Vec<FieldDescriptor>>,
    /// The index of the `{tenant_id}` variable, checked against the token's tenant.
    pub tenant_var: Option<usize>,
    /// 0 for the method's own rule, n for its n-th additional binding.
    pub additional: usize,
}

pub enum Lookup<'r, 'p> {
    Found {
        binding: &'r Binding,
        /// The request's path segments as matched (the verb cut off the last one), undecoded.
        segments: Vec<&'p str>,
    },
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

#[derive(Debug, Default)]
struct Node {
    literal: HashMap<String, Node>,
    single: Option<Box<Node>>,
    /// Bindings whose template ends in `**` here.
    multi: Vec<usize>,
    /// Bindings whose template ends exactly here.
    end: Vec<usize>,
}

#[derive(Debug, Default)]
pub struct Router {
    bindings: Vec<Binding>,
    root: Node,
}

impl Router {
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// Compile every HTTP binding of the services in `table` from `pool`. Errors point at the line of
    /// the route table naming what is wrong.
    pub fn build(
        pool: &DescriptorPool,
        table: &RouteTable,
        source: &Source,
    ) -> Result<Router, ConfigError> {
        let mut router = Router::default();
        for (service_name, service_route) in &table.services {
            let service = pool.get_service_by_name(service_name).ok_or_else(|| {
                source.error_at(
                    service_name,
                    format!("no gRPC service `{service_name}` in the descriptors"),
                )
            })?;
            for name in service_route.methods.keys() {
                let Some(method) = service.methods().find(|m| m.name() == name) else {
                    return Err(
                        source.error_at(name, format!("{service_name} has no method `{name}`"))
                    );
                };
                if http_rule(pool, &method).is_none() {
                    return Err(source.error_at(
                        name,
                        format!("{service_name}.{name} has no google.api.http binding, so it cannot be routed"),
                    ));
                }
            }
            for method in service.methods() {
                let Some(rule) = http_rule(pool, &method) else {
                    continue;
                };
                if method.is_client_streaming() {
                    tracing::warn!(
                        method = method.full_name(),
                        "client-streaming methods are not served over REST"
                    );
                    continue;
                }
                let settings = service_route
                    .methods
                    .get(method.name())
                    .cloned()
                    .unwrap_or_default();
                let rate_limit = match (settings.rate_limit, service_route.rate_limit) {
                    (Some(spec), _) => Some((Arc::from(method.full_name()), spec)),
                    (None, Some(spec)) => Some((Arc::from(service_name.as_str()), spec)),
                    (None, None) => None,
                };
                let access = contract::access(&method)
                    .map_err(|err| source.error_at(service_name, err.to_string()))?
                    .unwrap_or_default();
                let grpc_path = format!("/{}/{}", service.full_name(), method.name());
                let route = Arc::new(Route {
                    id: method.full_name().to_owned(),
                    grpc_path: PathAndQuery::try_from(grpc_path.as_str()).map_err(|_| {
                        source.error_at(
                            service_name,
                            format!("`{grpc_path}` is not a valid gRPC path"),
                        )
                    })?,
                    upstream: service_route.upstream.clone(),
                    public: access.public,
                    permission: Some(access.permission).filter(|p| !p.is_empty()),
                    tenant_match: settings.tenant_match.unwrap_or(true),
                    module: service_route.module.clone(),
                    active_tenant: service_route.active_tenant || service_route.module.is_some(),
                    rate_limit,
                    max_body: None,
                    long_lived: settings.long_lived,
                    method: method.clone(),
                });
                let rules = std::iter::once(&rule).chain(rule.additional_bindings.iter());
                for (additional, rule) in rules.enumerate() {
                    let binding = compile(route.clone(), rule, additional).map_err(|message| {
                        source.error_at(service_name, format!("{}: {message}", method.full_name()))
                    })?;
                    router
                        .insert(binding)
                        .map_err(|message| source.error_at(service_name, message))?;
                }
            }
        }
        for raw in &table.raw_routes {
            let binding = raw_binding(pool, raw).map_err(|message| {
                source.error_at(&raw.path, format!("raw route {}: {message}", raw.path))
            })?;
            router
                .insert(binding)
                .map_err(|message| source.error_at(&raw.path, message))?;
        }
        Ok(router)
    }

    fn insert(&mut self, binding: Binding) -> Result<(), String> {
        let duplicate = self.bindings.iter().find(|b| {
            b.http_method == binding.http_method
                && b.template.segments == binding.template.segments
                && b.template.verb == binding.template.verb
        });
        if let Some(other) = duplicate {
            return Err(format!(
                "{} {} is bound twice: by {} and by {}",
                binding.http_method, binding.template, other.route.id, binding.route.id
            ));
        }
        let index = self.bindings.len();
        let mut node = &mut self.root;
        for segment in &binding.template.segments {
            node = match segment {
                Segment::Literal(literal) => node.literal.entry(literal.clone()).or_default(),
                Segment::Single => node.single.get_or_insert_with(Default::default),
                Segment::Multi => {
                    node.multi.push(index);
                    self.bindings.push(binding);
                    return Ok(());
                }
            };
        }
        node.end.push(index);
        self.bindings.push(binding);
        Ok(())
    }

    /// The binding for `method` and `path` (the URI's path, undecoded, without the query).
    pub fn lookup<'r, 'p>(&'r self, method: &Method, path: &'p str) -> Lookup<'r, 'p> {
        let Some(rest) = path.strip_prefix('/') else {
            return Lookup::NotFound;
        };
        let segments: Vec<&'p str> = rest.split('/').collect();
        let mut candidates: Vec<(usize, bool)> = Vec::new();
        let mut found = Vec::new();
        // A custom verb first: `/v1/tenants/x:approve` is ApproveTenant, not GetTenant("x:approve").
        let last = segments.last().copied().unwrap_or("");
        let verb_split = last.rfind(':').map(|at| (&last[..at], &last[at + 1..]));
        if let Some((base, verb)) = verb_split {
            let mut split = segments.clone();
            if let Some(slot) = split.last_mut() {
                *slot = base;
            }
            search(&self.root, &split, 0, &mut found);
            candidates.extend(
                found
                    .drain(..)
                    .filter(|&i| self.bindings[i].template.verb.as_deref() == Some(verb))
                    .map(|i| (i, true)),
            );
        }
        search(&self.root, &segments, 0, &mut found);
        candidates.extend(
            found
                .drain(..)
                .filter(|&i| self.bindings[i].template.verb.is_none())
                .map(|i| (i, false)),
        );
        if let Some(&(index, split)) = candidates
            .iter()
            .find(|(i, _)| self.bindings[*i].http_method == method)
        {
            let mut segments = segments;
            if split && let (Some(slot), Some((base, _))) = (segments.last_mut(), verb_split) {
                *slot = base;
            }
            return Lookup::Found {
                binding: &self.bindings[index],
                segments,
            };
        }
        if candidates.is_empty() {
            return Lookup::NotFound;
        }
        let mut allowed: Vec<Method> = Vec::new();
        for (index, _) in candidates {
            let method = &self.bindings[index].http_method;
            if !allowed.contains(method) {
                allowed.push(method.clone());
            }
        }
        Lookup::MethodNotAllowed(allowed)
    }
}

/// Every binding matching `segments[i..]` below `node`, most specific first.
fn search(node: &Node, segments: &[&str], i: usize, out: &mut Vec<usize>) {
    let Some(segment) = segments.get(i) else {
        out.extend_from_slice(&node.end);
        out.extend_from_slice(&node.multi);
        return;
    };
    if !node.literal.is_empty() {
        let child = if segment.contains('%') {
            decode_all(segment)
                .ok()
                .and_then(|decoded| node.literal.get(&decoded))
        } else {
            node.literal.get(*segment)
        };
        if let Some(child) = child {
            search(child, segments, i + 1, out);
        }
    }
    if let Some(child) = &node.single
        && !segment.is_empty()
    {
        search(child, segments, i + 1, out);
    }
    if !node.multi.is_empty() && segments[i..].iter().all(|s| !s.is_empty()) {
        out.extend_from_slice(&node.multi);
    }
}

fn compile(route: Arc<Route>, rule: &HttpRule, additional: usize) -> Result<Binding, String> {
    let (http_method, path) = match &rule.pattern {
        Some(Pattern::Get(path)) => (Method::GET, path.as_str()),
        Some(Pattern::Put(path)) => (Method::PUT, path.as_str()),
        Some(Pattern::Post(path)) => (Method::POST, path.as_str()),
        Some(Pattern::Delete(path)) => (Method::DELETE, path.as_str()),
        Some(Pattern::Patch(path)) => (Method::PATCH, path.as_str()),
        Some(Pattern::Custom(custom)) => (
            Method::from_bytes(custom.kind.as_bytes())
                .map_err(|_| format!("`{}` is not an HTTP method", custom.kind))?,
            custom.path.as_str(),
        ),
        None => return Err("the http rule has no pattern".into()),
    };
    let template = PathTemplate::parse(path).map_err(|err| err.to_string())?;
    let input = route.method.input();
    let output = route.method.output();
    let path_fields = path_fields(&template, &input)?;
    let body = match rule.body.as_str() {
        "" => BodyRule::None,
        "*" => BodyRule::All,
        name => BodyRule::Field(
            field_by_name(&input, name)
                .ok_or_else(|| format!("body field `{name}` is not in {}", input.full_name()))?,
        ),
    };
    let response_body =
        match rule.response_body.as_str() {
            "" => None,
            name => Some(output.get_field_by_name(name).ok_or_else(|| {
                format!("response_body `{name}` is not in {}", output.full_name())
            })?),
        };
    let tenant_var = template
        .variables
        .iter()
        .position(|v| v.field_path.len() == 1 && v.field_path[0] == "tenant_id");
    Ok(Binding {
        route,
        http_method,
        template,
        body,
        response_body,
        path_fields,
        tenant_var,
        additional,
    })
}

/// The field chain each path variable of `template` sets in `input`.
fn path_fields(
    template: &PathTemplate,
    input: &MessageDescriptor,
) -> Result<Vec<Vec<FieldDescriptor>>, String> {
    let mut fields = Vec::with_capacity(template.variables.len());
    for variable in &template.variables {
        let mut chain = Vec::new();
        let mut message = input.clone();
        for (depth, name) in variable.field_path.iter().enumerate() {
            let field = message.get_field_by_name(name).ok_or_else(|| {
                format!(
                    "path variable `{}`: no field `{name}` in {}",
                    variable.dotted(),
                    message.full_name()
                )
            })?;
            let leaf = depth + 1 == variable.field_path.len();
            match field.kind() {
                _ if field.is_list() || field.is_map() => {
                    return Err(format!(
                        "path variable `{}` cannot be a repeated or map field",
                        variable.dotted()
                    ));
                }
                Kind::Message(inner) if !leaf => message = inner,
                Kind::Message(inner) if !is_scalar_message(&inner) => {
                    return Err(format!(
                        "path variable `{}` is a message",
                        variable.dotted()
                    ));
                }
                _ if !leaf => {
                    return Err(format!(
                        "path variable `{}`: `{name}` is not a message",
                        variable.dotted()
                    ));
                }
                _ => {}
            }
            chain.push(field);
        }
        fields.push(chain);
    }
    Ok(fields)
}

/// Compile a raw route: a public method, a `bytes` body field, string header fields.
fn raw_binding(pool: &DescriptorPool, raw: &RawRoute) -> Result<Binding, String> {
    let (service_name, method_name) = raw.rpc.rsplit_once('.').ok_or_else(|| {
        format!(
            "`{}` is not a full method name (package.Service.Method)",
            raw.rpc
        )
    })?;
    let service = pool
        .get_service_by_name(service_name)
        .ok_or_else(|| format!("no gRPC service `{service_name}` in the descriptors"))?;
    let method = service
        .methods()
        .find(|m| m.name() == method_name)
        .ok_or_else(|| format!("{service_name} has no method `{method_name}`"))?;
    if method.is_client_streaming() || method.is_server_streaming() {
        return Err(format!("{} must be unary", raw.rpc));
    }
    let access = contract::access(&method)
        .map_err(|err| err.to_string())?
        .unwrap_or_default();
    if !access.public {
        return Err(format!(
            "{} is not public: a raw route carries no user credentials, so its method must declare `(keel.v1.access) = {{ public: true }}` and authenticate the sender itself",
            raw.rpc
        ));
    }
    let input = method.input();
    let field = input
        .get_field_by_name(&raw.body_field)
        .filter(|f| f.kind() == Kind::Bytes && !f.is_list())
        .ok_or_else(|| {
            format!(
                "body_field `{}` is not a bytes field of {}",
                raw.body_field,
                input.full_name()
            )
        })?;
    let mut headers = Vec::with_capacity(raw.headers.len());
    for (header, name) in &raw.headers {
        let header = http::HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| format!("`{header}` is not a header name"))?;
        let target = input
            .get_field_by_name(name)
            .filter(|f| f.kind() == Kind::String && !f.is_list())
            .ok_or_else(|| {
                format!(
                    "header field `{name}` is not a string field of {}",
                    input.full_name()
                )
            })?;
        headers.push((header, target));
    }
    let template = PathTemplate::parse(&raw.path).map_err(|err| err.to_string())?;
    let path_fields = path_fields(&template, &input)?;
    let grpc_path = format!("/{}/{}", service.full_name(), method.name());
    let route = Arc::new(Route {
        id: method.full_name().to_owned(),
        grpc_path: PathAndQuery::try_from(grpc_path.as_str())
            .map_err(|_| format!("`{grpc_path}` is not a valid gRPC path"))?,
        upstream: raw.upstream.clone(),
        public: true,
        permission: None,
        tenant_match: false,
        module: None,
        active_tenant: false,
        rate_limit: raw
            .rate_limit
            .map(|spec| (Arc::from(raw.path.as_str()), spec)),
        max_body: raw.max_body_bytes,
        long_lived: false,
        method: method.clone(),
    });
    Ok(Binding {
        route,
        http_method: Method::POST,
        template,
        body: BodyRule::Raw { field, headers },
        response_body: None,
        path_fields,
        tenant_var: None,
        additional: 0,
    })
}
