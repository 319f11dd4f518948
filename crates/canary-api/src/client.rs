//! Talking to a running controller's API, for `canary status`,
//! `canary promote` and the other commands.

use std::time::Duration;

use canary_rollout::driver::Report;
use canary_rollout::Command;
use canary_sources::http::{HttpClient, HttpError, HttpRequest, Method};

/// Default API address.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the controller at {server}: {source} (is `canary run` running? see --server)"
    )]
    Unreachable {
        server: String,
        #[source]
        source: HttpError,
    },
    #[error("the controller refused: {0}")]
    Refused(String),
    #[error("the controller refused the token ({0}): give the token `canary run` uses with --token-file, CANARY_TOKEN_FILE or CANARY_TOKEN (it generates one into .canary/api-token unless told otherwise)")]
    Unauthorized(String),
    #[error("the controller answered {status}: {body}")]
    Unexpected { status: u16, body: String },
}

/// A client for one controller.
#[derive(Debug, Clone)]
pub struct ApiClient {
    server: String,
    token: Option<String>,
    http: HttpClient,
}

impl ApiClient {
    /// A client for `server` (`http://127.0.0.1:7070`).
    pub fn new(server: &str, token: Option<String>) -> Result<ApiClient, ClientError> {
        ApiClient::trusting(server, token, None)
    }

    /// A client for `server` that also trusts the PEM certificates in
    /// `roots` (an `https://` API with its own certificate).
    pub fn trusting(
        server: &str,
        token: Option<String>,
        roots: Option<&[u8]>,
    ) -> Result<ApiClient, ClientError> {
        let http = HttpClient::trusting(roots).map_err(|source| ClientError::Unreachable {
            server: server.to_owned(),
            source,
        })?;
        Ok(ApiClient {
            server: server.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    /// `GET /status`.
    pub async fn status(&self) -> Result<Report, ClientError> {
        let request =
            HttpRequest::get(&format!("{}/status", self.server)).timeout(Duration::from_secs(10));
        self.call(self.authorize(request)).await
    }

    /// Sends a command and returns the report after it.
    pub async fn command(&self, command: Command) -> Result<Report, ClientError> {
        let path = command.name();
        let request = HttpRequest::new(Method::Post, &format!("{}/{path}", self.server))
            .timeout(Duration::from_secs(45));
        self.call(self.authorize(request)).await
    }

    fn authorize(&self, request: HttpRequest) -> HttpRequest {
        match &self.token {
            Some(token) => request.header("authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    async fn call(&self, request: HttpRequest) -> Result<Report, ClientError> {
        let response =
            self.http
                .send(request)
                .await
                .map_err(|source| ClientError::Unreachable {
                    server: self.server.clone(),
                    source,
                })?;
        match response.status {
            200 => serde_json::from_slice(&response.body).map_err(|err| ClientError::Unexpected {
                status: 200,
                body: format!("not a report: {err}"),
            }),
            401 => Err(ClientError::Unauthorized(error_message(&response.body))),
            409 => Err(ClientError::Refused(error_message(&response.body))),
            status => Err(ClientError::Unexpected {
                status,
                body: error_message(&response.body),
            }),
        }
    }
}

fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned())
}
