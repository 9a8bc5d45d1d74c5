//! The dashboards and alerts under `deploy/` query only series the platform really exports: every
//! `keel_*` metric named in an `expr` (Grafana panel targets, Prometheus rules) must appear on the
//! admin `/metrics` of a running service. The test starts the real tenancy service (the kernel's
//! series: gRPC, outbox, consumers, dead letters, database pool) and the real gateway (its HTTP,
//! upstream and rate-limit series) in process, makes one call through both, and reads both.
//!
//! It lives with the gateway because the gateway's tests already run tenancy in process; it is an
//! operations test, not a gateway behaviour test. Needs the local stack's Postgres.
#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use keel_edge_gateway::config::{GatewayConfig, parse};
use keel_edge_gateway::{Application, Loaded, descriptors};
use keel_testkit::stack::{self, TestDatabase, TestNats};
use keel_testkit::tokens::{TestIssuer, TokenSpec};

/// Series that dashboards and alerts use but that come from elsewhere, with where from. Anything
/// not `keel_*` must be listed here, so a typo in an external name fails too.
const EXTERNAL_SERIES: &[(&str, &str)] = &[(
    "kube_pod_container_status_restarts_total",
    "kube-state-metrics",
)];

/// Suffixes the exposition adds to a family's name (counters, histograms).
const SAMPLE_SUFFIXES: &[&str] = &["_total", "_bucket", "_sum", "_count", "_created"];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("json" | "yaml" | "yml")
        ) {
            out.push(path);
        }
    }
}

/// Every string under a key `expr`, at any depth (PromQL in rules and panel targets).
fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                    _ => collect_exprs(inner, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_exprs(i, out)),
        _ => {}
    }
}

/// `(file, expression)` for every query under deploy/.
fn deploy_queries() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    files_under(&deploy_dir(), &mut files);
    let mut queries = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let documents: Vec<serde_json::Value> = if file.extension().is_some_and(|e| e == "json") {
            vec![serde_json::from_str(&text).unwrap()]
        } else {
            serde_yaml::Deserializer::from_str(&text)
                .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
                .collect()
        };
        let mut exprs = Vec::new();
        for doc in &documents {
            collect_exprs(doc, &mut exprs);
        }
        queries.extend(exprs.into_iter().map(|e| (file.clone(), e)));
    }
    queries
}

/// Metric names in a PromQL expression: identifiers that are not inside quotes, not label names
/// (followed by `=`, `!=`, `=~`, `!~`) and not functions or keywords (followed by `(`, or in
/// `by (...)` / `without (...)` lists). What is left starting `keel_` or `kube_` is a series.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut in_quotes = false;
    let mut in_grouping = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            in_quotes = !in_quotes;
            i += 1;
            continue;
        }
        if in_quotes {
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace()).copied();
            if matches!(word.as_str(), "by" | "without") {
                in_grouping = true;
            } else if !in_grouping
                && next != Some('(')
                && next != Some('=')
                && next != Some('!')
                && (word.starts_with("keel_") || word.starts_with("kube_"))
            {
                names.insert(word);
            }
            continue;
        }
        if c == ')' {
            in_grouping = false;
        }
        i += 1;
    }
    names
}

/// Family names on an OpenMetrics page (`# TYPE <name> <type>`), and every sample's name.
fn exported_names(page: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            names.insert(rest.split_whitespace().next().unwrap().to_owned());
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

fn is_exported(name: &str, exported: &BTreeSet<String>) -> bool {
    exported.contains(name)
        || SAMPLE_SUFFIXES.iter().any(|s| {
            name.strip_suffix(s)
                .is_some_and(|base| exported.contains(base))
        })
}

async fn start_gateway(jwks_url: &str, issuer: &str, nats_url: &str, tenancy: &str) -> Application {
    let config: GatewayConfig = parse(
        &format!(
            "http:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nauth:\n  jwks_url: {jwks_url}\n  issuer: {issuer}\n  audience: keel\n  jwks_min_refetch_secs: 0\nnats:\n  url: {nats_url}\nroutes: routes.yaml\n"
        ),
        Path::new("edge-gateway.yaml"),
    )
    .unwrap();
    let routes = format!(
        "upstreams:\n  tenancy: {{ address: \"{tenancy}\", timeout_ms: 10000 }}\nservices:\n  tenancy.v1.TenantService: {{ upstream: tenancy }}\n"
    );
    let loaded = Loaded::from_parts(config, &routes, Path::new("routes.yaml")).unwrap();
    Application::build(loaded, descriptors::pool(&[]).unwrap())
        .await
        .expect("the gateway starts")
}

#[test]
fn metric_names_are_read_from_promql() {
    let names = metric_names(
        r#"sum by (service, le) (rate(keel_grpc_request_duration_seconds_bucket{method!~".*/(Watch|Stream).*", code="2"}[5m])) / on (pod) kube_pod_container_status_restarts_total > 0.5"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        vec![
            "keel_grpc_request_duration_seconds_bucket".to_owned(),
            "kube_pod_container_status_restarts_total".to_owned()
        ]
    );
    let exported: BTreeSet<String> = ["keel_grpc_requests".to_owned()].into();
    assert!(is_exported("keel_grpc_requests_total", &exported));
    assert!(!is_exported("keel_grpc_request", &exported));
}

#[tokio::test]
async fn every_series_in_dashboards_and_alerts_is_exported() {
    let queries = deploy_queries();
    let mut used: BTreeSet<String> = BTreeSet::new();
    for (_, expr) in &queries {
        used.extend(metric_names(expr));
    }
    // Not vacuous: the dashboards and the rules are there and were read.
    assert!(
        queries.len() >= 20,
        "only {} queries under deploy/",
        queries.len()
    );
    assert!(
        used.contains("keel_outbox_oldest_unpublished_age_seconds"),
        "{used:?}"
    );
    assert!(used.contains("keel_http_requests_total"), "{used:?}");

    let db = TestDatabase::create().await;
    let nats = TestNats::start().await;
    let issuer = TestIssuer::start().await;
    let mut config = stack::config_with(
        "tenancy",
        db.provision("tenancy").await,
        stack::nats_config(&nats.url()),
        keel_tenancy::Settings::default(),
    );
    config.auth = issuer.auth_config();
    let tenancy = keel_tenancy::build(config).await.expect("tenancy starts");
    let auth = issuer.auth_config();
    let gateway = start_gateway(
        &auth.jwks_url,
        &auth.issuer,
        &nats.url(),
        &tenancy.grpc_addr.to_string(),
    )
    .await;

    // One call through both, so the labelled families have samples as well as metadata.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let token = issuer.token(TokenSpec::any_user());
    let answer = http
        .get(format!(
            "http://{}/v1/tenants/{}",
            gateway.addr,
            uuid::Uuid::new_v4()
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_client_error(), "{}", answer.status());

    let mut exported = BTreeSet::new();
    for admin in [
        tenancy.admin_addr,
        gateway.admin_addr.expect("admin listener configured"),
    ] {
        let page = http
            .get(format!("http://{admin}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        exported.extend(exported_names(&page));
    }

    let mut missing = Vec::new();
    for name in &used {
        let known = if name.starts_with("keel_") {
            is_exported(name, &exported)
        } else {
            EXTERNAL_SERIES.iter().any(|(external, _)| external == name)
        };
        if !known {
            let files: BTreeSet<String> = queries
                .iter()
                .filter(|(_, e)| metric_names(e).contains(name))
                .map(|(f, _)| f.display().to_string())
                .collect();
            missing.push(format!("{name} (in {files:?})"));
        }
    }
    assert!(
        missing.is_empty(),
        "dashboards/alerts use series no service exports: {missing:#?}\nexported: {exported:#?}"
    );
    tenancy.stop().await.unwrap();
}
