//! The controller's HTTP API (bound to 127.0.0.1 by default):
//!
//! | Method and path | What |
//! | --- | --- |
//! | `GET /status` | the rollout's status as JSON |
//! | `POST /promote` (`?full=true`), `/abort`, `/pause`, `/resume`, `/retry` | commands; answer the new status, or 409 with the reason |
//! | `GET /metrics` | Prometheus text |
//! | `GET /healthz` | 200 while the process serves |
//! | `GET /readyz` | 200 once the split in force has been pushed, else 503 |
//!
//! When a token is configured, every `POST` needs `Authorization: Bearer
//! <token>` (401 otherwise); reads stay open.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use canary_rollout::Command;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::controller::{CommandRequest, Shared};

/// What the API needs.
#[derive(Clone)]
pub struct ApiState {
    /// Status and metrics.
    pub shared: Arc<Shared>,
    /// Commands to the loop.
    pub commands: mpsc::Sender<CommandRequest>,
    /// Bearer token required for commands, if any.
    pub token: Option<String>,
}

/// Binds `addr` and serves until the task is dropped. Returns the bound
/// address (useful with port 0) and the serving task.
pub async fn serve(
    addr: SocketAddr,
    state: ApiState,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| handle(state.clone(), request));
                if let Err(err) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    debug!("API connection from {peer}: {err}");
                }
            });
        }
    });
    Ok((bound, task))
}

async fn handle(
    state: ApiState,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let method = request.method().clone();
    let response = match (&method, path.as_str()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => match state.shared.ready() {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("not ready: {why}\n"),
            ),
        },
        (&Method::GET, "/status") => json_response(StatusCode::OK, &state.shared.status()),
        (&Method::GET, "/metrics") => {
            let mut response = text(StatusCode::OK, &state.shared.metrics.render());
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        (&Method::POST, command_path) => match command_for(command_path, &query) {
            Some(command) => {
                if !authorized(&state, &request) {
                    warn!("refused {command}: missing or wrong bearer token");
                    error(
                        StatusCode::UNAUTHORIZED,
                        "this API needs `Authorization: Bearer <token>` for commands",
                    )
                } else {
                    run_command(&state, command).await
                }
            }
            None => error(
                StatusCode::NOT_FOUND,
                &format!("no such command: {command_path}"),
            ),
        },
        (_, "/status" | "/metrics" | "/healthz" | "/readyz") => error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("{path} answers GET"),
        ),
        _ => error(StatusCode::NOT_FOUND, &format!("no such path: {path}")),
    };
    Ok(response)
}

/// The command a `POST` path names.
fn command_for(path: &str, query: &str) -> Option<Command> {
    let full = query
        .split('&')
        .any(|pair| pair == "full=true" || pair == "full=1" || pair == "full");
    Some(match path {
        "/promote" if full => Command::PromoteFull,
        "/promote" => Command::Promote,
        "/promote/full" => Command::PromoteFull,
        "/abort" => Command::Abort,
        "/pause" => Command::Pause,
        "/resume" => Command::Resume,
        "/retry" => Command::Retry,
        _ => return None,
    })
}

fn authorized(state: &ApiState, request: &Request<Incoming>) -> bool {
    let Some(token) = &state.token else {
        return true;
    };
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn run_command(state: &ApiState, command: Command) -> Response<Full<Bytes>> {
    let (reply, answer) = oneshot::channel();
    if state.commands.send((command, reply)).await.is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the controller loop is not running",
        );
    }
    match answer.await {
        Ok(Ok(status)) => json_response(StatusCode::OK, &status),
        Ok(Err(reason)) => error(StatusCode::CONFLICT, &reason),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the controller loop stopped",
        ),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json_response<T: serde::Serialize>(status: StatusCode, body: &T) -> Response<Full<Bytes>> {
    let text = serde_json::to_string_pretty(body).unwrap_or_else(|_| "{}".into());
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json_response(status, &json!({ "error": message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_paths() {
        assert_eq!(command_for("/promote", ""), Some(Command::Promote));
        assert_eq!(
            command_for("/promote", "full=true"),
            Some(Command::PromoteFull)
        );
        assert_eq!(command_for("/promote/full", ""), Some(Command::PromoteFull));
        assert_eq!(command_for("/abort", ""), Some(Command::Abort));
        assert_eq!(command_for("/retry", ""), Some(Command::Retry));
        assert_eq!(command_for("/status", ""), None);
    }
}
