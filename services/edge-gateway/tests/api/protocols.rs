//! Every client transport on the one port: HTTP/1.1, HTTP/2 with prior knowledge (h2c), TLS with
//! ALPN (and a certificate renewed on disk while serving); compression and conditional GETs.
//! Each goes through the same authentication and tenant checks.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use reqwest::Version;

use crate::support::{Harness, ROUTES, problem};

/// A fresh CA and a `localhost` leaf it signed: `(ca_pem, leaf_pem, leaf_key_pem)`.
fn certificate_chain(ca_name: &str) -> (String, String, String) {
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    let ca = ca_params.self_signed(&ca_key).expect("a CA certificate");
    let leaf_key = KeyPair::generate().expect("a leaf key");
    let leaf_params = CertificateParams::new(vec!["localhost".to_owned()]).expect("leaf params");
    let leaf = leaf_params
        .signed_by(&leaf_key, &ca, &ca_key)
        .expect("a leaf certificate");
    (ca.pem(), leaf.pem(), leaf_key.serialize_pem())
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keel-edge-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

fn write(path: &Path, text: &str) {
    // Written aside and renamed, as a renewal tool would: the gateway never sees half a file.
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text).expect("write");
    std::fs::rename(&temporary, path).expect("rename");
}

fn tls_client(ca_pem: &str, addr: SocketAddr, http1_only: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("a CA"))
        .resolve("localhost", addr);
    if http1_only {
        builder = builder.http1_only();
    }
    builder.build().expect("a TLS client")
}

#[tokio::test]
async fn http2_with_prior_knowledge_and_http1_share_the_port_with_the_same_checks() {
    let h = Harness::start().await;
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .expect("an h2c client");
    let response = h2
        .get(h.url("/v1/things/a"))
        .bearer_auth(&h.token)
        .send()
        .await
        .expect("the gateway answers h2c");
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let thing: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(thing["id"], "a");

    let response = h
        .http
        .get(h.url("/v1/things/a"))
        .bearer_auth(&h.token)
        .send()
        .await
        .expect("the gateway answers HTTP/1.1");
    assert_eq!(response.version(), Version::HTTP_11);
    assert_eq!(response.status(), 200);

    // The same refusals over HTTP/2.
    let (status, doc) = problem(h2.get(h.url("/v1/things/a"))).await;
    assert_eq!(status, 401, "{doc}");
    let other = keel_kernel::TenantId::new();
    let (status, doc) = problem(
        h2.get(h.url(&format!("/v1/tenants/{other}/things/x")))
            .bearer_auth(&h.token),
    )
    .await;
    assert_eq!(status, 403, "{doc}");
    // Many concurrent streams on one connection.
    let calls = (0..50).map(|i| {
        h2.get(h.url(&format!("/v1/things/t{i}")))
            .bearer_auth(&h.token)
            .send()
    });
    for response in futures::future::join_all(calls).await {
        let response = response.expect("answers");
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), Version::HTTP_2);
    }
    h.stop().await;
}

#[tokio::test]
async fn tls_with_alpn_serves_h2_and_http1_and_picks_up_a_renewed_certificate() {
    let dir = scratch_dir();
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let (first_ca, leaf, leaf_key) = certificate_chain("first CA");
    write(&cert, &leaf);
    write(&key, &leaf_key);
    let extra = format!(
        "  tls:\n    cert_file: {}\n    key_file: {}\n    reload_interval_ms: 50\n",
        cert.display(),
        key.display()
    );
    let h = Harness::build(ROUTES, &extra).await;
    let addr = h.app.as_ref().expect("running").addr;
    let url = format!("https://localhost:{}/v1/things/a", addr.port());

    let h2 = tls_client(&first_ca, addr, false);
    let response = h2
        .get(&url)
        .bearer_auth(&h.token)
        .send()
        .await
        .expect("TLS answers");
    assert_eq!(response.version(), Version::HTTP_2, "ALPN chose h2");
    assert_eq!(response.status(), 200);
    let (status, _) = problem(h2.get(&url)).await;
    assert_eq!(status, 401, "no token over TLS is refused too");

    let h1 = tls_client(&first_ca, addr, true);
    let response = h1
        .get(&url)
        .bearer_auth(&h.token)
        .send()
        .await
        .expect("TLS answers");
    assert_eq!(response.version(), Version::HTTP_11);
    assert_eq!(response.status(), 200);

    // Cleartext on a TLS port is not served.
    let plain = h
        .http
        .get(format!("http://{addr}/v1/things/a"))
        .send()
        .await;
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status() != 200));

    // A renewal signed by another CA: new connections get it without a restart.
    let (second_ca, leaf, leaf_key) = certificate_chain("second CA");
    write(&key, &leaf_key);
    write(&cert, &leaf);
    let renewed = tls_client(&second_ca, addr, false);
    let mut served = false;
    for _ in 0..100 {
        if let Ok(response) = renewed.get(&url).bearer_auth(&h.token).send().await {
            assert_eq!(response.status(), 200);
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "the renewed certificate was never served");
    let stale = tls_client(&first_ca, addr, false);
    assert!(
        stale.get(&url).send().await.is_err(),
        "the old certificate is no longer served"
    );

    // A broken renewal keeps the working certificate.
    write(&cert, "not a certificate");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fresh = tls_client(&second_ca, addr, false);
    let response = fresh
        .get(&url)
        .bearer_auth(&h.token)
        .send()
        .await
        .expect("still served");
    assert_eq!(response.status(), 200);
    h.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_key_that_does_not_match_its_certificate_stops_start_up_naming_the_file() {
    let dir = scratch_dir();
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let (_, leaf, _) = certificate_chain("a CA");
    let (_, _, other_key) = certificate_chain("another CA");
    write(&cert, &leaf);
    write(&key, &other_key);
    let config = keel_edge_gateway::config::TlsConfig {
        cert_file: cert.clone(),
        key_file: key.clone(),
        reload_interval_ms: std::num::NonZeroU64::MIN,
        handshake_timeout_ms: 1000,
    };
    let err = keel_edge_gateway::tls::build(&config)
        .err()
        .expect("a mismatched pair is refused");
    let text = err.to_string();
    assert!(text.contains("http.tls.key_file"), "{text}");
    assert!(text.contains("does not match"), "{text}");
    write(&cert, "garbage");
    let err = keel_edge_gateway::tls::build(&config)
        .err()
        .expect("no certificate is refused");
    assert!(err.to_string().contains("http.tls.cert_file"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn large_answers_are_compressed_by_accept_encoding_and_small_ones_are_not() {
    let h = Harness::start().await;
    let long = "x".repeat(4000);
    let path = format!("/v1/things/a?name={long}");
    for (accept, expected) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip;q=0.5, br;q=0.9", "br"),
    ] {
        let response = h
            .get(&path)
            .header("accept-encoding", accept)
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response
                .headers()
                .get("content-encoding")
                .and_then(|v| v.to_str().ok()),
            Some(expected),
            "Accept-Encoding: {accept}"
        );
        let body = response.bytes().await.expect("a body");
        assert!(
            body.len() < 1000,
            "{accept}: {} bytes compressed",
            body.len()
        );
    }
    // Identity when not asked, and for small answers.
    let response = h.get(&path).send().await.expect("answers");
    assert!(response.headers().get("content-encoding").is_none());
    let thing: serde_json::Value = response.json().await.expect("plain JSON");
    assert_eq!(thing["name"], long.as_str());
    let response = h
        .get("/v1/things/a")
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("answers");
    assert!(response.headers().get("content-encoding").is_none());
    // A refusal is not worth compressing either, and still a refusal.
    let (status, _) = problem(h.http.get(h.url(&path)).header("accept-encoding", "gzip")).await;
    assert_eq!(status, 401);
    h.stop().await;
}

#[tokio::test]
async fn a_get_carries_an_etag_and_if_none_match_answers_304() {
    let h = Harness::start().await;
    let response = h
        .get("/v1/things/a?name=one")
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    let tag = response
        .headers()
        .get("etag")
        .expect("an ETag")
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(tag.starts_with('"') && tag.ends_with('"'), "strong: {tag}");

    let again = h
        .get("/v1/things/a?name=one")
        .header("if-none-match", &tag)
        .send()
        .await
        .expect("answers");
    assert_eq!(again.status(), 304);
    assert_eq!(
        again.headers().get("etag").and_then(|v| v.to_str().ok()),
        Some(tag.as_str())
    );
    assert!(again.bytes().await.expect("body").is_empty());

    // Weak comparison and lists, as RFC 9110 says for If-None-Match.
    let listed = h
        .get("/v1/things/a?name=one")
        .header("if-none-match", format!("\"other\", W/{tag}"))
        .send()
        .await
        .expect("answers");
    assert_eq!(listed.status(), 304);

    // Another representation, another tag.
    let changed = h
        .get("/v1/things/a?name=two")
        .header("if-none-match", &tag)
        .send()
        .await
        .expect("answers");
    assert_eq!(changed.status(), 200);
    assert_ne!(
        changed.headers().get("etag").and_then(|v| v.to_str().ok()),
        Some(tag.as_str())
    );

    // Without a token, the tag does not get anyone a 304.
    let (status, _) = problem(
        h.http
            .get(h.url("/v1/things/a?name=one"))
            .header("if-none-match", &tag),
    )
    .await;
    assert_eq!(status, 401);
    h.stop().await;
}
