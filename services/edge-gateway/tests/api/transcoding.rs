//! Each `google.api.http` rule, through the gateway to a real service that echoes what it got.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Harness, problem};

/// `expected`'s members must all be in `actual`, recursively (arrays element by element, of the
/// same length).
fn assert_subset(actual: &Value, expected: &Value, case: &str) {
    match (actual, expected) {
        (Value::Array(actual_items), Value::Array(expected_items)) => {
            assert_eq!(actual_items.len(), expected_items.len(), "{case}: {actual}");
            for (got, want) in actual_items.iter().zip(expected_items) {
                assert_subset(got, want, case);
            }
        }
        (Value::Object(actual_map), Value::Object(expected_map)) => {
            for (key, want) in expected_map {
                let got = actual_map
                    .get(key)
                    .unwrap_or_else(|| panic!("{case}: `{key}` missing in {actual}"));
                assert_subset(got, want, case);
            }
        }
        _ => assert_eq!(actual, expected, "{case}"),
    }
}

async fn send(
    h: &Harness,
    method: Method,
    path: &str,
    body: Option<&str>,
) -> reqwest::RequestBuilder {
    let request = h.request(method, path);
    match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(body.to_owned()),
        None => request,
    }
}

#[tokio::test]
async fn every_binding_rule_transcodes_to_what_the_service_receives() {
    let h = Harness::start().await;
    let t = h.tenant;
    let cases: Vec<(&str, Method, String, Option<String>, Value)> = vec![
        (
            "a path variable and scalar query parameters",
            Method::GET,
            "/v1/things/abc?name=n&big=9007199254740993&ubig=18446744073709551615&small=-4&ratio=0.5&flag=true&color=COLOR_RED".into(),
            None,
            json!({"method": "GetThing", "id": "abc", "name": "n", "big": "9007199254740993",
                   "ubig": "18446744073709551615", "small": -4, "ratio": 0.5, "flag": true, "color": "COLOR_RED"}),
        ),
        (
            "repeated query keys fill repeated fields, enums by name or number",
            Method::GET,
            "/v1/things/a?tags=x&tags=y&numbers=1&numbers=2&colors=COLOR_RED&colors=2".into(),
            None,
            json!({"tags": ["x", "y"], "numbers": ["1", "2"], "colors": ["COLOR_RED", "COLOR_BLUE"]}),
        ),
        (
            "nested query parameters",
            Method::GET,
            "/v1/things/a?inner.note=hi&inner.child.level=3".into(),
            None,
            json!({"inner": {"note": "hi", "child": {"level": 3}}}),
        ),
        (
            "well-known types from the query",
            Method::GET,
            "/v1/things/a?when=2024-05-01T10:00:00Z&ttl=1.5s&maybe=7&blob=aGk".into(),
            None,
            json!({"when": "2024-05-01T10:00:00Z", "ttl": "1.500s", "maybe": 7, "blob": "aGk="}),
        ),
        (
            "proto names and JSON names are both accepted in the query",
            Method::GET,
            "/v1/things/a?tenant_id=t1&inner.child.note=n".into(),
            None,
            json!({"tenantId": "t1", "inner": {"child": {"note": "n"}}}),
        ),
        (
            "percent-encoded path and query values are decoded",
            Method::GET,
            "/v1/things/a%20b%2Fc?name=x%26y+z".into(),
            None,
            json!({"id": "a b/c", "name": "x&y z"}),
        ),
        (
            "body \"*\" takes every field but the path's",
            Method::POST,
            "/v1/shelves/s1/things".into(),
            Some(r#"{"name":"n","big":"5","labels":{"k":"v"},"extra":{"a":[1,"two",null]},"blob":"aGk=","inner":{"note":"x"},"when":"2024-05-01T10:00:00.5+02:00"}"#.into()),
            json!({"method": "CreateThing", "shelf": "s1", "name": "n", "big": "5", "labels": {"k": "v"},
                   "extra": {"a": [1.0, "two", null]}, "blob": "aGk=", "inner": {"note": "x"},
                   "when": "2024-05-01T08:00:00.500Z"}),
        ),
        (
            "int64 is accepted as a JSON number too",
            Method::POST,
            "/v1/shelves/s1/things".into(),
            Some(r#"{"big": 12, "small": "7"}"#.into()),
            json!({"big": "12", "small": 7}),
        ),
        (
            "proto field names are accepted in the body",
            Method::POST,
            "/v1/shelves/s1/things".into(),
            Some(r#"{"tenant_id": "t"}"#.into()),
            json!({"tenantId": "t"}),
        ),
        (
            "an empty body is an empty message",
            Method::POST,
            "/v1/shelves/s1/things".into(),
            None,
            json!({"shelf": "s1", "method": "CreateThing"}),
        ),
        (
            "a named body field, a nested path variable, and the query",
            Method::PATCH,
            "/v1/things/t1?updateMask=name,inner.note&validateOnly=true".into(),
            Some(r#"{"name": "n"}"#.into()),
            json!({"thing": {"id": "t1", "name": "n"}, "updateMask": "name,inner.note", "validateOnly": true}),
        ),
        (
            "a multi-segment variable",
            Method::GET,
            "/v1/shelves/s1/things/t2".into(),
            None,
            json!({"method": "GetByName", "name": "shelves/s1/things/t2"}),
        ),
        (
            "** with a custom verb",
            Method::GET,
            "/v1/files/a/b/c.txt:download".into(),
            None,
            json!({"method": "GetFile", "name": "a/b/c.txt"}),
        ),
        (
            "an encoded slash stays encoded in a multi-segment variable",
            Method::GET,
            "/v1/files/a%2Fb/c%20d:download".into(),
            None,
            json!({"name": "a%2Fb/c d"}),
        ),
        (
            "a literal segment beats a variable",
            Method::GET,
            "/v1/things/special".into(),
            None,
            json!({"method": "GetSpecial"}),
        ),
        (
            "a custom verb beats a variable",
            Method::POST,
            "/v1/things/t1:archive".into(),
            Some("{}".into()),
            json!({"method": "ArchiveThing", "id": "t1"}),
        ),
        (
            "without a binding for its verb, the colon is part of the value",
            Method::GET,
            "/v1/things/t1:archive".into(),
            None,
            json!({"method": "GetThing", "id": "t1:archive"}),
        ),
        (
            "a repeated field as the body",
            Method::PUT,
            "/v1/things/t1/tags".into(),
            Some(r#"["x", "y"]"#.into()),
            json!({"method": "SetTags", "id": "t1", "tags": ["x", "y"]}),
        ),
        (
            "a method's own binding",
            Method::GET,
            "/v1/lookup/k".into(),
            None,
            json!({"method": "Lookup", "id": "k"}),
        ),
        (
            "an additional binding of the same method",
            Method::POST,
            "/v1/lookup".into(),
            Some(r#"{"id": "k2"}"#.into()),
            json!({"method": "Lookup", "id": "k2"}),
        ),
        (
            "a generated service: enums by name, int64 as strings, RFC 3339 timestamps",
            Method::POST,
            format!("/v1/tenants/{t}/ai/completions"),
            Some(r#"{"prompt": "hi", "messages": [{"role": "CHAT_ROLE_USER", "content": "x"}], "maxTokens": 5}"#.into()),
            json!({"id": format!("completion-for-{t}"), "model": "local-default",
                   "message": {"role": "CHAT_ROLE_ASSISTANT", "content": "1 messages; prompt: hi"},
                   "finishReason": "FINISH_REASON_STOP",
                   "usage": {"promptTokens": "3", "totalTokens": "7", "costMicros": "9007199254740993", "currency": "USD"},
                   "createTime": "2023-11-14T22:13:20Z"}),
        ),
        (
            "a named message body with a map field",
            Method::PUT,
            format!("/v1/tenants/{t}/ai/memories/m1"),
            Some(r#"{"content": "c", "metadata": {"a": "b"}, "namespace": "support"}"#.into()),
            json!({"id": "m1", "tenantId": t.to_string(), "content": "c", "metadata": {"a": "b"}, "namespace": "support"}),
        ),
        (
            "timestamps and integers from the query of a generated service",
            Method::GET,
            format!("/v1/tenants/{t}/ai/usage?startTime=2024-01-01T00:00:00Z&pageSize=5&pageToken=p"),
            None,
            json!({"usageRecords": [{"createTime": "2024-01-01T00:00:00Z", "requestId": "5", "status": "CALL_STATUS_SUCCEEDED"}],
                   "nextPageToken": "p"}),
        ),
        (
            "google.protobuf.Empty answers {}",
            Method::DELETE,
            format!("/v1/tenants/{t}/ai/memories/m1"),
            None,
            json!({}),
        ),
    ];
    for (case, method, path, body, expected) in cases {
        let got = h.ok(send(&h, method, &path, body.as_deref()).await).await;
        assert_subset(&got, &expected, case);
    }
}

#[tokio::test]
async fn default_values_are_omitted_from_responses() {
    let h = Harness::start().await;
    let got = h.ok(h.get("/v1/things/z")).await;
    assert_eq!(got, json!({"id": "z", "method": "GetThing"}));
}

#[tokio::test]
async fn response_body_answers_with_one_field() {
    let h = Harness::start().await;
    let got = h.ok(h.get("/v1/things/t1/tags?tags=a&tags=b")).await;
    assert_eq!(got, json!(["a", "b"]));
    let none = h.ok(h.get("/v1/things/t1/tags")).await;
    assert_eq!(none, json!([]));
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field() {
    let h = Harness::start().await;
    let t = h.tenant;
    let cases: Vec<(&str, Method, String, Option<&str>, &str)> = vec![
        (
            "an unknown body field",
            Method::POST,
            "/v1/shelves/s1/things".into(),
            Some(r#"{"nmae": "x"}"#),
            "nmae",
        ),
        (
            "an unknown nested body field",
            Method::POST,
            "/v1/shelves/s1/things".into(),
            Some(r#"{"inner": {"bogus": 1}}"#),
            "inner.bogus",
        ),
        (
            "an unknown field in a named body",
            Method::PATCH,
            "/v1/things/t1".into(),
            Some(r#"{"bogus": 1}"#),
            "thing.bogus",
        ),
        (
            "a path field repeated in the body",
            Method::POST,
            "/v1/shelves/s1/things".into(),
            Some(r#"{"shelf": "s2"}"#),
            "shelf",
        ),
        (
            "a path field repeated inside a named body",
            Method::PATCH,
            "/v1/things/t1".into(),
            Some(r#"{"id": "t2"}"#),
            "thing.id",
        ),
        (
            "a path field of a generated service in the body",
            Method::POST,
            format!("/v1/tenants/{t}/ai/completions"),
            Some(r#"{"tenantId": "x"}"#),
            "tenantId",
        ),
        (
            "an unknown query parameter",
            Method::GET,
            "/v1/things/a?nope=1".into(),
            None,
            "nope",
        ),
        (
            "a query parameter where the body takes every field",
            Method::POST,
            "/v1/shelves/s1/things?name=x".into(),
            Some("{}"),
            "name",
        ),
        (
            "the body field as a query parameter",
            Method::PATCH,
            "/v1/things/t1?thing.name=x".into(),
            Some("{}"),
            "thing.name",
        ),
        (
            "a singular query parameter given twice",
            Method::GET,
            "/v1/things/a?name=x&name=y".into(),
            None,
            "name",
        ),
        (
            "a map field in the query",
            Method::GET,
            "/v1/things/a?labels=x".into(),
            None,
            "labels",
        ),
        (
            "a message in the query",
            Method::GET,
            "/v1/things/a?inner=x".into(),
            None,
            "inner",
        ),
        (
            "a path field in the query",
            Method::GET,
            "/v1/things/a?id=b".into(),
            None,
            "id",
        ),
        (
            "a wrongly typed query value",
            Method::GET,
            "/v1/things/a?big=lots".into(),
            None,
            "big",
        ),
        (
            "an out of range query value",
            Method::GET,
            "/v1/things/a?small=3000000000".into(),
            None,
            "small",
        ),
        (
            "an unknown enum name in the query",
            Method::GET,
            "/v1/things/a?color=PURPLE".into(),
            None,
            "color",
        ),
        (
            "a bad boolean in the query",
            Method::GET,
            "/v1/things/a?flag=yes".into(),
            None,
            "flag",
        ),
        (
            "a bad timestamp in the query",
            Method::GET,
            "/v1/things/a?when=yesterday".into(),
            None,
            "when",
        ),
        (
            "an unknown enum name in the body",
            Method::POST,
            "/v1/shelves/s1/things".into(),
            Some(r#"{"color": "PURPLE"}"#),
            "color",
        ),
        (
            "a wrongly typed body value",
            Method::POST,
            "/v1/shelves/s1/things".into(),
            Some(r#"{"small": "x"}"#),
            "small",
        ),
        (
            "an out of range body value",
            Method::POST,
            "/v1/shelves/s1/things".into(),
            Some(r#"{"small": 3000000000}"#),
            "small",
        ),
        (
            "a bad timestamp in the body",
            Method::POST,
            "/v1/shelves/s1/things".into(),
            Some(r#"{"when": "yesterday"}"#),
            "when",
        ),
        (
            "a wrongly typed element of a list",
            Method::POST,
            "/v1/shelves/s1/things".into(),
            Some(r#"{"numbers": ["1", "x"]}"#),
            "numbers[1]",
        ),
        (
            "a wrongly typed path value",
            Method::GET,
            "/v1/slow/abc".into(),
            None,
            "millis",
        ),
    ];
    for (case, method, path, body, field) in cases {
        let (status, doc) = problem(send(&h, method, &path, body).await).await;
        assert_eq!(status, 400, "{case}: {doc}");
        assert_eq!(doc["code"], "VALIDATION", "{case}: {doc}");
        assert_eq!(doc["violations"][0]["field"], field, "{case}: {doc}");
        assert!(
            doc["detail"].as_str().unwrap_or("").contains(field),
            "{case}: {doc}"
        );
    }
    assert_eq!(
        h.echo.calls.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing bad reached the service"
    );
}

#[tokio::test]
async fn malformed_bodies_are_a_400() {
    let h = Harness::start().await;
    let cases: Vec<(&str, Method, &str, &str, &str)> = vec![
        (
            "broken JSON",
            Method::POST,
            "/v1/shelves/s1/things",
            "{",
            "not valid JSON",
        ),
        (
            "trailing garbage",
            Method::POST,
            "/v1/shelves/s1/things",
            "{} x",
            "not valid JSON",
        ),
        (
            "an array for a message",
            Method::POST,
            "/v1/shelves/s1/things",
            "[1]",
            "JSON object",
        ),
        (
            "a body where none is taken",
            Method::GET,
            "/v1/things/a",
            "{}",
            "no request body",
        ),
    ];
    for (case, method, path, body, detail) in cases {
        let (status, doc) = problem(send(&h, method, path, Some(body)).await).await;
        assert_eq!(status, 400, "{case}: {doc}");
        assert_eq!(doc["code"], "VALIDATION", "{case}");
        assert!(
            doc["detail"].as_str().unwrap_or("").contains(detail),
            "{case}: {doc}"
        );
    }
}
