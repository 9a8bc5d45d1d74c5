//! The services' admin HTTP ports: dead letters, `/outbox` and `/metrics`.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::error::{Failure, Outcome};

const TIMEOUT: Duration = Duration::from_secs(15);

/// One service's admin port.
pub struct AdminClient {
    service: String,
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl AdminClient {
    pub fn new(service: &str, base: &str, token: Option<&str>) -> Outcome<AdminClient> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|err| Failure::failed(format!("cannot build an HTTP client: {err}")))?;
        Ok(AdminClient {
            service: service.to_owned(),
            base: base.trim_end_matches('/').to_owned(),
            token: token.map(str::to_owned),
            http,
        })
    }

    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Outcome<T> {
        let response = self.send(self.http.get(self.url(path))).await?;
        self.json(path, response).await
    }

    pub async fn post_json<T: DeserializeOwned>(&self, path: &str) -> Outcome<T> {
        let response = self.send(self.http.post(self.url(path))).await?;
        self.json(path, response).await
    }

    /// The Prometheus text of `/metrics` (open: no token needed).
    pub async fn metrics(&self) -> Outcome<String> {
        let response = self.send(self.http.get(self.url("/metrics"))).await?;
        response
            .text()
            .await
            .map_err(|err| Failure::failed(format!("{}: reading /metrics: {err}", self.target())))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn target(&self) -> String {
        format!("{} admin port at {}", self.service, self.base)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Outcome<reqwest::Response> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.map_err(|err| {
            if err.is_connect() || err.is_timeout() {
                Failure::Unreachable(format!("cannot reach the {}: {err}", self.target()))
            } else {
                Failure::failed(format!("{}: {err}", self.target()))
            }
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        // The kernel answers `{"code": ..., "message": ...}`; show the message when there is one.
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or(body);
        let detail = format!("{message} (HTTP {})", status.as_u16());
        Err(match status.as_u16() {
            401 => Failure::Refused(format!(
                "the {} refused the token: {detail}; pass a platform admin's token or the operator token with --token or KEELCTL_TOKEN",
                self.target()
            )),
            403 => Failure::Refused(format!(
                "the {} refused the call for this token: {detail}",
                self.target()
            )),
            _ => Failure::failed(format!("the {}: {detail}", self.target())),
        })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        path: &str,
        response: reqwest::Response,
    ) -> Outcome<T> {
        response.json::<T>().await.map_err(|err| {
            Failure::failed(format!(
                "{}: unexpected answer from {path}: {err}",
                self.target()
            ))
        })
    }
}
