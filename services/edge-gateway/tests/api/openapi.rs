//! The OpenAPI document describes exactly what the gateway accepts.

use keel_edge_gateway::router::{Lookup, Router};
use serde_json::{Value, json};

use crate::support::{Harness, ROUTES, gateway_config_offline, pool};

async fn spec(h: &Harness) -> Value {
    let response = h
        .http
        .get(h.url("/openapi.json"))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.expect("JSON")
}

fn parameter<'a>(operation: &'a Value, name: &str) -> Option<&'a Value> {
    operation["parameters"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
}

#[tokio::test]
async fn operations_list_path_and_query_parameters_from_the_descriptors() {
    let h = Harness::start().await;
    let spec = spec(&h).await;
    assert_eq!(spec["openapi"], "3.1.0");
    let get = &spec["paths"]["/v1/things/{id}"]["get"];
    assert_eq!(get["operationId"], "keel.test.v1.EchoService.GetThing");
    assert_eq!(parameter(get, "id").expect("id")["in"], "path");
    assert_eq!(parameter(get, "id").expect("id")["required"], true);
    assert_eq!(
        parameter(get, "big").expect("big")["schema"]["type"],
        "string",
        "int64 as string"
    );
    assert_eq!(
        parameter(get, "tags").expect("tags")["schema"]["type"],
        "array"
    );
    assert_eq!(
        parameter(get, "inner.child.level").expect("nested")["in"],
        "query"
    );
    assert_eq!(
        parameter(get, "color").expect("color")["schema"]["$ref"],
        "#/components/schemas/keel.test.v1.Color"
    );
    assert!(
        parameter(get, "labels").is_none(),
        "maps cannot be query parameters"
    );
    assert!(parameter(get, "extra").is_none(), "nor can Struct");

    let update = &spec["paths"]["/v1/things/{thing_id}"]["patch"];
    assert_eq!(
        update["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/keel.test.v1.Thing"
    );
    assert!(parameter(update, "updateMask").is_some());
    assert!(
        parameter(update, "thing.name").is_none(),
        "the body field is not in the query"
    );

    let create = &spec["paths"]["/v1/shelves/{shelf}/things"]["post"];
    let body = &create["requestBody"]["content"]["application/json"]["schema"];
    assert!(
        body["properties"].get("shelf").is_none(),
        "path fields are not repeated in the body"
    );
    assert!(body["properties"].get("name").is_some());
    assert_eq!(body["additionalProperties"], false);
    assert!(
        create.get("parameters").is_none() || parameter(create, "name").is_none(),
        "body \"*\" has no query"
    );

    assert!(spec["paths"]["/v1/files/{name}:download"]["get"].is_object());
    let by_name = &spec["paths"]["/v1/shelves/{name_1}/things/{name_2}"]["get"];
    assert_eq!(
        by_name["operationId"], "keel.test.v1.EchoService.GetByName",
        "literals kept, wildcards named"
    );
    assert!(
        spec["paths"]["/v1/lookup"]["post"]["operationId"]
            .as_str()
            .unwrap_or("")
            .ends_with("Lookup_2")
    );
    let stream = &spec["paths"]["/v1/count/{n}"]["get"]["responses"]["200"]["content"];
    assert!(
        stream.get("text/event-stream").is_some() && stream.get("application/x-ndjson").is_some()
    );
}

#[tokio::test]
async fn schemas_follow_protojson() {
    let h = Harness::start().await;
    let spec = spec(&h).await;
    let schemas = &spec["components"]["schemas"];
    let thing = &schemas["keel.test.v1.Thing"]["properties"];
    assert_eq!(
        thing["big"],
        json!({"type": "string", "format": "int64", "pattern": "^-?[0-9]{1,18}$"})
    );
    assert_eq!(thing["when"]["format"], "date-time");
    assert_eq!(thing["tenantId"]["type"], "string", "lowerCamelCase names");
    assert_eq!(thing["labels"]["additionalProperties"]["type"], "string");
    assert_eq!(
        schemas["keel.test.v1.Color"]["enum"],
        json!(["COLOR_UNSPECIFIED", "COLOR_RED", "COLOR_BLUE"])
    );
    assert_eq!(schemas["keel.test.v1.Thing"]["additionalProperties"], false);
    let usage = &schemas["ai.v1.TokenUsage"]["properties"]["costMicros"];
    assert_eq!(usage["type"], "string");
    assert!(
        schemas["ai.v1.Completion"]["description"]
            .as_str()
            .unwrap_or("")
            .contains("finished completion"),
        "proto comments"
    );
}

#[tokio::test]
async fn security_and_errors_are_documented() {
    let h = Harness::start().await;
    let spec = spec(&h).await;
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");
    assert_eq!(schemes["apiKeyAuth"]["in"], "header");
    assert_eq!(spec["paths"]["/v1/ping"]["get"]["security"], json!([]));
    let get = &spec["paths"]["/v1/things/{id}"]["get"];
    assert_eq!(
        get["security"],
        json!([{"bearerAuth": []}, {"apiKeyAuth": []}])
    );
    for status in [
        "400", "401", "403", "404", "429", "500", "503", "504", "default",
    ] {
        assert_eq!(
            get["responses"][status]["$ref"], "#/components/responses/Problem",
            "{status}"
        );
    }
    let problem =
        &spec["components"]["responses"]["Problem"]["content"]["application/problem+json"];
    assert_eq!(problem["schema"]["$ref"], "#/components/schemas/Problem");
    assert_eq!(
        spec["components"]["schemas"]["Problem"]["required"],
        json!(["type", "title", "status", "detail", "code", "requestId"])
    );
}

#[test]
fn the_permission_a_method_declares_is_documented_on_its_operations() {
    let pool = pool();
    let routes = ROUTES.replace("{upstream}", "127.0.0.1:1");
    let loaded = keel_edge_gateway::Loaded::from_parts(
        gateway_config_offline(),
        &routes,
        std::path::Path::new("routes.yaml"),
    )
    .expect("valid");
    let router = Router::build(&pool, &loaded.routes, &loaded.routes_source).expect("routes");
    let spec = keel_edge_gateway::openapi::document(&router, &pool, "test");
    let operations: Vec<&Value> = spec["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().expect("item").values())
        .collect();
    let completions: Vec<&&Value> = operations
        .iter()
        .filter(|op| {
            op["operationId"]
                .as_str()
                .is_some_and(|id| id.starts_with("ai.v1.AiService.Complete"))
        })
        .collect();

    assert!(!completions.is_empty());
    for op in completions {
        assert_eq!(op["x-keel-permission"], "ai.completion.create", "{op}");
        let description = op["description"].as_str().expect("a description");
        assert!(
            description.ends_with("Requires the permission `ai.completion.create`."),
            "{description}"
        );
    }
    assert_eq!(
        spec["paths"]["/v1/ping"]["get"]["x-keel-permission"],
        Value::Null
    );
}

#[test]
fn every_documented_operation_routes_to_its_method() {
    let pool = pool();
    let routes = ROUTES.replace("{upstream}", "127.0.0.1:1");
    let loaded = keel_edge_gateway::Loaded::from_parts(
        gateway_config_offline(),
        &routes,
        std::path::Path::new("routes.yaml"),
    )
    .expect("valid");
    let router = Router::build(&pool, &loaded.routes, &loaded.routes_source).expect("routes");
    let spec = keel_edge_gateway::openapi::document(&router, &pool, "test");
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("item") {
            // Fill each parameter with a plain value.
            let mut concrete = path.clone();
            while let (Some(open), Some(close)) = (concrete.find('{'), concrete.find('}')) {
                concrete.replace_range(open..=close, "v");
            }
            let method =
                http::Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
            match router.lookup(&method, &concrete) {
                Lookup::Found { binding, .. } => {
                    let id = operation["operationId"].as_str().expect("an id");
                    assert!(
                        id.starts_with(&binding.route.id),
                        "{method} {concrete}: {id} vs {}",
                        binding.route.id
                    );
                    checked += 1;
                }
                _ => panic!("{method} {path} is documented but not routed"),
            }
        }
    }
    assert_eq!(
        checked,
        router.bindings().len(),
        "every binding is documented once"
    );
}
