//! The platform through REST only: the real identity and tenancy services (each built by its own
//! `app::build`, on a fresh database and a private JetStream) behind the real gateway.
//!
//! Needs the local stack's Postgres (`make test` starts it).
#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keel_edge_gateway::config::{GatewayConfig, parse};
use keel_edge_gateway::{Application, Loaded, descriptors};
use keel_identity::settings::{
    HashingSettings, IdentitySettings, LockoutSettings, SigningKeyFile, SigningSettings,
};
use keel_kernel::app::Running;
use keel_kernel::config::AuthConfig;
use keel_testkit::stack::{self, TestDatabase, TestNats};
use keel_testkit::tokens::{TestIssuer, TokenSpec};
use serde_json::{Value, json};

const ISSUER: &str = "keel-e2e";
const AUDIENCE: &str = "keel";
const KID: &str = "e2e-key-1";
const PASSWORD: &str = "Correct horse 42";

struct Mesh {
    base: String,
    /// A second gateway replica in front of the same services and broker.
    replica: String,
    http: reqwest::Client,
    /// Identity's signing key (PKCS#8 DER), to forge tokens that fail only for the reason tested.
    signing_der: Vec<u8>,
    _gateway: Application,
    _replica: Application,
    _identity: Running,
    _tenancy: Running,
    _db: TestDatabase,
    _nats: TestNats,
}

fn auth(jwks_url: String) -> AuthConfig {
    AuthConfig {
        jwks_url,
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        jwks_min_refetch_secs: 0,
        leeway_secs: 5,
    }
}

impl Mesh {
    async fn start() -> Mesh {
        let db = TestDatabase::create().await;
        // With the per-service users, so the gateways follow revocations as `edge-gateway`.
        let nats = TestNats::start_with_accounts().await;

        let keys_dir =
            std::env::temp_dir().join(format!("keel-e2e-keys-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&keys_dir).unwrap();
        let key_file: PathBuf = keys_dir.join(format!("{KID}.pem"));
        let signing_der = keel_testkit::tokens::write_ed25519_pem(&key_file);
        let identity_settings = IdentitySettings {
            signing: SigningSettings {
                active_kid: KID.into(),
                keys: vec![SigningKeyFile {
                    kid: KID.into(),
                    private_key_file: key_file,
                }],
            },
            password_hashing: HashingSettings {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1,
                ..HashingSettings::default()
            },
            lockout: LockoutSettings {
                window_secs: 600,
                free_attempts: 100,
                base_delay_ms: 0,
                max_delay_ms: 0,
                account_threshold: 50,
                account_delay_threshold: 1_000,
                ip_threshold: 1_000,
                lock_secs: 600,
            },
            ..IdentitySettings::default()
        };
        let mut identity_config = stack::config_with(
            "identity",
            db.provision("identity").await,
            stack::nats_config(&nats.url()),
            identity_settings,
        );
        identity_config.auth = auth(String::new());
        let identity = keel_identity::app::build(identity_config)
            .await
            .expect("identity starts");
        let jwks_url = format!("http://{}/.well-known/jwks.json", identity.admin_addr);

        let mut tenancy_config = stack::config_with(
            "tenancy",
            db.provision("tenancy").await,
            stack::nats_config(&nats.url()),
            keel_tenancy::Settings {
                auto_approve: true,
                ..keel_tenancy::Settings::default()
            },
        );
        tenancy_config.auth = auth(jwks_url.clone());
        let tenancy = keel_tenancy::build(tenancy_config)
            .await
            .expect("tenancy starts");

        let routes = format!(
            r#"
upstreams:
  identity: {{ address: "{identity}", timeout_ms: 10000 }}
  tenancy: {{ address: "{tenancy}", timeout_ms: 10000 }}
services:
  identity.v1.AuthService: {{ upstream: identity }}
  identity.v1.UserService: {{ upstream: identity }}
  identity.v1.AccessService: {{ upstream: identity }}
  tenancy.v1.TenantService:
    upstream: tenancy
    methods:
      GetTenant: {{ tenant_match: false }}
  tenancy.v1.MembershipService: {{ upstream: tenancy }}
  tenancy.v1.ModuleService: {{ upstream: tenancy }}
api_keys: {{ upstream: identity, cache_secs: 30 }}
"#,
            identity = identity.grpc_addr,
            tenancy = tenancy.grpc_addr,
        );
        let gateway_nats = nats.url_as("edge-gateway");
        let gateway = start_gateway(&jwks_url, &gateway_nats, &routes).await;
        let replica = start_gateway(&jwks_url, &gateway_nats, &routes).await;
        Mesh {
            base: format!("http://{}", gateway.addr),
            replica: format!("http://{}", replica.addr),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            signing_der,
            _gateway: gateway,
            _replica: replica,
            _identity: identity,
            _tenancy: tenancy,
            _db: db,
            _nats: nats,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `(status, body)`; the body is JSON, problem documents included.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        if status >= 400 {
            assert_eq!(
                content_type.as_deref(),
                Some("application/problem+json"),
                "{status}: {text}"
            );
        }
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    /// Register and log in: the unscoped access token.
    async fn sign_up(&self, email: &str, name: &str) -> String {
        let (status, user) = self
            .post(
                "/v1/auth/register",
                None,
                json!({ "email": email, "password": PASSWORD, "displayName": name }),
            )
            .await;
        assert_eq!(status, 200, "{user}");
        assert_eq!(user["email"], email);
        let (status, pair) = self
            .post(
                "/v1/auth/login",
                None,
                json!({ "email": email, "password": PASSWORD }),
            )
            .await;
        assert_eq!(status, 200, "{pair}");
        assert_eq!(pair["tokenType"], "Bearer");
        pair["accessToken"].as_str().unwrap().to_owned()
    }

    /// Verify `email` the way the platform will: the notifier reads identity's verification
    /// request from the stream (which carries no secret) and exchanges its id for a token with
    /// service credentials; the user posts that token over REST. Returns a fresh access token,
    /// which now says the email is verified.
    async fn verify_email(&self, email: &str) -> String {
        use keel_proto::identity::v1 as identity;
        let log = keel_testkit::EventLog::connect(&self._nats.url()).await;
        let requested: identity::UserVerificationRequested = eventually(|| async {
            log.of_type("identity.user.verification_requested", 1)
                .await
                .iter()
                .map(keel_testkit::payload::<identity::UserVerificationRequested>)
                .find(|request| request.email == email)
        })
        .await;
        let any_token = self
            .post(
                "/v1/auth/login",
                None,
                json!({ "email": email, "password": PASSWORD }),
            )
            .await
            .1["accessToken"]
            .as_str()
            .unwrap()
            .to_owned();
        let notifier = self.forge(&any_token, |claims| {
            claims["sub"] = json!("notifier");
            claims["kind"] = json!("service");
            claims["perms"] = json!(["identity.verification.issue"]);
            claims.as_object_mut().unwrap().remove("sid");
            claims.as_object_mut().unwrap().remove("email");
        });
        let mut client = identity::auth_service_client::AuthServiceClient::connect(format!(
            "http://{}",
            self._identity.grpc_addr
        ))
        .await
        .unwrap();
        let mut request = tonic::Request::new(identity::IssueVerificationTokenRequest {
            verification_id: requested.verification_id,
        });
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {notifier}").parse().unwrap(),
        );
        let token = client
            .issue_verification_token(request)
            .await
            .expect("the notifier gets a verification token")
            .into_inner()
            .token;
        let (status, user) = self
            .post("/v1/auth/verify-email", None, json!({ "token": token }))
            .await;
        assert_eq!(status, 200, "{user}");
        let (status, pair) = self
            .post(
                "/v1/auth/login",
                None,
                json!({ "email": email, "password": PASSWORD }),
            )
            .await;
        assert_eq!(status, 200, "{pair}");
        pair["accessToken"].as_str().unwrap().to_owned()
    }

    /// A token scoped to `tenant`, once identity has learnt of the membership (from events).
    async fn switch(&self, unscoped: &str, tenant: &str) -> String {
        let pair = eventually(|| async {
            let (status, pair) = self
                .post(
                    "/v1/auth/switch-tenant",
                    Some(unscoped),
                    json!({ "tenantId": tenant }),
                )
                .await;
            (status == 200).then_some(pair)
        })
        .await;
        assert_eq!(pair["tenantId"], tenant);
        pair["accessToken"].as_str().unwrap().to_owned()
    }

    async fn create_tenant(&self, unscoped: &str, slug: &str) -> String {
        let (status, tenant) = self
            .post(
                "/v1/tenants",
                Some(unscoped),
                json!({ "name": slug.to_uppercase(), "slug": slug }),
            )
            .await;
        assert_eq!(status, 200, "{tenant}");
        assert_eq!(tenant["state"], "TENANT_STATE_ACTIVE");
        tenant["id"].as_str().unwrap().to_owned()
    }

    /// A token signed with identity's own key and kid, with `adjust`ed claims.
    fn forge(&self, claims_of: &str, adjust: impl FnOnce(&mut Value)) -> String {
        let mut claims: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(claims_of.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        adjust(&mut claims);
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(KID.into());
        let key = jsonwebtoken::EncodingKey::from_ed_der(&self.signing_der);
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }
}

async fn start_gateway(jwks_url: &str, nats_url: &str, routes: &str) -> Application {
    let config: GatewayConfig = parse(
        &format!(
            "http:\n  listen: 127.0.0.1:0\nauth:\n  jwks_url: {jwks_url}\n  issuer: {ISSUER}\n  audience: {AUDIENCE}\n  jwks_min_refetch_secs: 0\nnats:\n  url: {nats_url}\nroutes: routes.yaml\n"
        ),
        Path::new("edge-gateway.yaml"),
    )
    .unwrap();
    let loaded = Loaded::from_parts(config, routes, Path::new("routes.yaml")).unwrap();
    Application::build(loaded, descriptors::pool(&[]).unwrap())
        .await
        .expect("the gateway starts")
}

async fn eventually<T, F, Fut>(mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(Instant::now() < deadline, "condition not met in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

#[tokio::test]
async fn the_platform_works_through_rest_alone() {
    let mesh = Mesh::start().await;

    // The owner: register, log in, create a tenant, switch to it.
    let owner_email = format!("{}@example.com", unique("owner"));
    let owner = mesh.sign_up(&owner_email, "Owner").await;
    let (status, me) = mesh.get("/v1/me", Some(&owner)).await;
    assert_eq!(
        (status, me["email"].as_str()),
        (200, Some(owner_email.as_str()))
    );
    let tenant_a = mesh.create_tenant(&owner, &unique("acme")).await;
    let owner_a = mesh.switch(&owner, &tenant_a).await;

    // Invite a member, who verifies their address and accepts with an unscoped token.
    let member_email = format!("{}@example.com", unique("member"));
    mesh.sign_up(&member_email, "Member").await;
    let member = mesh.verify_email(&member_email).await;
    let (status, invitation) = mesh
        .post(
            &format!("/v1/tenants/{tenant_a}/invitations"),
            Some(&owner_a),
            json!({ "email": member_email, "role": "member" }),
        )
        .await;
    assert_eq!(status, 200, "{invitation}");
    assert_eq!(invitation["state"], "INVITATION_STATE_PENDING");
    let (status, membership) = mesh
        .post(
            "/v1/invitations:accept",
            Some(&member),
            json!({ "token": invitation["token"] }),
        )
        .await;
    assert_eq!(status, 200, "{membership}");
    assert_eq!(membership["tenantId"], tenant_a.as_str());

    // The members, listed by the owner.
    let (status, members) = mesh
        .get(&format!("/v1/tenants/{tenant_a}/members"), Some(&owner_a))
        .await;
    assert_eq!(status, 200, "{members}");
    let mut listed: Vec<(String, String)> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["userId"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    listed.sort_unstable();
    let (_, member_me) = mesh.get("/v1/me", Some(&member)).await;
    let mut expected = vec![
        (me["id"].as_str().unwrap().to_owned(), "owner".to_owned()),
        (
            member_me["id"].as_str().unwrap().to_owned(),
            "member".to_owned(),
        ),
    ];
    expected.sort_unstable();
    assert_eq!(listed, expected);

    // The member works in tenant A; their own tenant B is another world.
    let member_a = mesh.switch(&member, &tenant_a).await;
    let tenant_b = mesh.create_tenant(&member, &unique("other")).await;
    let (status, _) = mesh
        .get(&format!("/v1/tenants/{tenant_a}/members"), Some(&member_a))
        .await;
    assert_eq!(status, 200);
    for token in [&member_a, &owner_a] {
        let (status, problem) = mesh
            .get(&format!("/v1/tenants/{tenant_b}/members"), Some(token))
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (403, Some("AUTHZ")),
            "{problem}"
        );
    }

    // A spoofed tenant header changes nothing, either way.
    for (path, expected) in [
        (format!("/v1/tenants/{tenant_b}/members"), 403),
        (format!("/v1/tenants/{tenant_a}/members"), 200),
    ] {
        let response = mesh
            .http
            .get(mesh.url(&path))
            .bearer_auth(&member_a)
            .header("x-tenant-id", &tenant_b)
            .header("x-user-id", "00000000-0000-0000-0000-000000000000")
            .header("x-roles", "owner")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "{path}");
    }

    // An API key of tenant A, exchanged at the edge.
    let (status, key) = mesh
        .post(
            &format!("/v1/tenants/{tenant_a}/api-keys"),
            Some(&owner_a),
            json!({ "name": "ci", "scopes": ["tenancy.member.read"] }),
        )
        .await;
    assert_eq!(status, 200, "{key}");
    let secret = key["secret"].as_str().unwrap();
    let response = mesh
        .http
        .get(mesh.url(&format!("/v1/tenants/{tenant_a}/members")))
        .header("x-api-key", secret)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
    let response = mesh
        .http
        .get(mesh.url(&format!("/v1/tenants/{tenant_b}/members")))
        .header("x-api-key", secret)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "the key is tenant A's");

    // Bad tokens: 401 problem+json, each for its own reason.
    let foreign = TestIssuer::start_with(ISSUER, AUDIENCE).await;
    let expired = mesh.forge(&member_a, |c| {
        c["iat"] = json!(1_600_000_000);
        c["exp"] = json!(1_600_000_900);
    });
    let tampered = {
        let mut parts: Vec<String> = member_a.split('.').map(str::to_owned).collect();
        let mut claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        claims["tid"] = json!(tenant_b);
        parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
        parts.join(".")
    };
    let alg_none = {
        let header =
            URL_SAFE_NO_PAD.encode(json!({ "alg": "none", "typ": "JWT", "kid": KID }).to_string());
        let payload = member_a.split('.').nth(1).unwrap();
        format!("{header}.{payload}.")
    };
    let foreign_key = foreign.token(
        TokenSpec::any_user()
            .tenant(tenant_b.parse().unwrap())
            .perm("*"),
    );
    let mut kid_spoof_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    kid_spoof_header.kid = Some(KID.into());
    let kid_spoof = keel_testkit::tokens::encode(
        &kid_spoof_header,
        &foreign.claims(&TokenSpec::any_user().tenant(tenant_b.parse().unwrap())),
        foreign.current_key().encoding_key(),
    );
    for (case, token) in [
        ("expired", expired),
        ("tampered", tampered),
        ("alg none", alg_none),
        ("foreign key", foreign_key),
        ("foreign key under identity's kid", kid_spoof),
    ] {
        let (status, problem) = mesh
            .get(&format!("/v1/tenants/{tenant_b}/members"), Some(&token))
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (401, Some("AUTHN")),
            "{case}: {problem}"
        );
    }

    // Public routes work without a token; the JWKS is identity's.
    let (status, jwks) = mesh.get("/.well-known/jwks.json", None).await;
    assert_eq!(status, 200);
    assert_eq!(jwks["keys"][0]["kid"], KID);
    assert_eq!(jwks["keys"][0]["use"], "sig");
}

#[tokio::test]
async fn a_client_cannot_forge_the_address_identity_records_for_its_session() {
    let mesh = Mesh::start().await;
    let email = format!("{}@example.com", unique("spoof"));
    mesh.sign_up(&email, "Spoofer").await;
    let response = mesh
        .http
        .post(mesh.url("/v1/auth/login"))
        .header("x-forwarded-for", "1.2.3.4")
        .header("x-real-ip", "1.2.3.4")
        .header("x-keel-client-ip", "1.2.3.4")
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let pair: Value = response.json().await.unwrap();
    let token = pair["accessToken"].as_str().unwrap();
    let (status, sessions) = mesh.get("/v1/me/sessions", Some(token)).await;
    assert_eq!(status, 200, "{sessions}");
    let sessions = sessions["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    for session in sessions {
        assert_eq!(session["ipAddress"], "127.0.0.1", "{session}");
    }
}

/// Until both replicas refuse `request` with 401; how long that took. Panics after 10 s.
async fn refused_everywhere(
    mesh: &Mesh,
    request: impl Fn(&str) -> reqwest::RequestBuilder,
) -> Duration {
    let started = Instant::now();
    let mut pending = vec![mesh.base.clone(), mesh.replica.clone()];
    while !pending.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still accepted by {pending:?}"
        );
        let mut still = Vec::new();
        for base in pending {
            let status = request(&base).send().await.unwrap().status().as_u16();
            if status != 401 {
                assert_eq!(status, 200, "{base}");
                still.push(base);
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    started.elapsed()
}

#[tokio::test]
async fn a_revoked_api_key_or_logged_out_session_is_refused_by_every_replica_within_2_seconds() {
    let mesh = Mesh::start().await;
    let email = format!("{}@example.com", unique("revoker"));
    let owner = mesh.sign_up(&email, "Owner").await;
    let tenant = mesh.create_tenant(&owner, &unique("revoke")).await;
    let owner_t = mesh.switch(&owner, &tenant).await;
    let (status, key) = mesh
        .post(
            &format!("/v1/tenants/{tenant}/api-keys"),
            Some(&owner_t),
            json!({ "name": "ci", "scopes": ["tenancy.member.read"] }),
        )
        .await;
    assert_eq!(status, 200, "{key}");
    let secret = key["secret"].as_str().unwrap().to_owned();
    let members = format!("/v1/tenants/{tenant}/members");
    let with_key = |base: &str| {
        mesh.http
            .get(format!("{base}{members}"))
            .header("x-api-key", &secret)
    };
    // Both replicas have exchanged the key and cache it for 30 s.
    for base in [&mesh.base, &mesh.replica] {
        assert_eq!(with_key(base).send().await.unwrap().status(), 200, "{base}");
    }
    let (status, revoked) = mesh
        .call(
            reqwest::Method::DELETE,
            &format!(
                "/v1/tenants/{tenant}/api-keys/{}",
                key["id"].as_str().unwrap()
            ),
            Some(&owner_t),
            None,
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    let took = refused_everywhere(&mesh, with_key).await;
    assert!(took < Duration::from_secs(2), "the key worked for {took:?}");

    // A session logged out through one replica: its access token, still unexpired, is refused
    // by both.
    let me = |base: &str| mesh.http.get(format!("{base}/v1/me")).bearer_auth(&owner_t);
    for base in [&mesh.base, &mesh.replica] {
        assert_eq!(me(base).send().await.unwrap().status(), 200, "{base}");
    }
    let response = mesh
        .http
        .post(format!("{}/v1/auth/logout", mesh.replica))
        .bearer_auth(&owner_t)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let took = refused_everywhere(&mesh, me).await;
    assert!(
        took < Duration::from_secs(2),
        "the session worked for {took:?}"
    );
    // A new session of the same user is untouched, on both replicas.
    let (status, pair) = mesh
        .post(
            "/v1/auth/login",
            None,
            json!({ "email": email, "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, 200, "{pair}");
    let fresh = pair["accessToken"].as_str().unwrap();
    for base in [&mesh.base, &mesh.replica] {
        let response = mesh
            .http
            .get(format!("{base}/v1/me"))
            .bearer_auth(fresh)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "only the revoked session is denied");
    }
}
