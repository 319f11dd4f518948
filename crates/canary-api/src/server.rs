//! The controller's HTTP API (bound to 127.0.0.1 by default):
//!
//! | Method and path | What |
//! | --- | --- |
//! | `GET /status` | the rollout's report as JSON (`canary run`; the operator's first) |
//! | `GET /rollouts`, `GET /rollouts/{namespace}/{name}` | every report, one report |
//! | `POST /rollouts/{namespace}/{name}/{command}` | a command to one rollout |
//! | `POST /promote`, `/promote-full` (or `/promote?full=true`), `/abort`, `/pause`, `/resume`, `/retry` | commands; answer the new report, or 409 with the reason |
//! | `GET /metrics` | Prometheus text |
//! | `GET /healthz` | 200 while the process serves |
//! | `GET /readyz` | `canary run`: 200 once the split in force has been pushed, else 503; the operator: 200 while it serves |
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

use crate::{Board, CommandRequest, Readiness, Refusal};

/// What the API needs.
#[derive(Clone)]
pub struct ApiState {
    /// Reports and metrics.
    pub board: Arc<Board>,
    /// Commands to the shell.
    pub commands: mpsc::Sender<CommandRequest>,
    /// Bearer token required for commands, if any.
    pub token: Option<String>,
    /// When `/readyz` answers 200.
    pub readiness: Readiness,
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

/// What a path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Health,
    Ready,
    Metrics,
    Status(Option<String>),
    List,
    Command(Option<String>, Command),
}

/// The route of `method` `path?query`, or why there is none.
fn route(method: &Method, path: &str, query: &str) -> Result<Route, (StatusCode, String)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let full = query
        .split('&')
        .any(|pair| pair == "full=true" || pair == "full=1" || pair == "full");
    let command = |name: &str| -> Result<Command, (StatusCode, String)> {
        let command: Command = name
            .parse()
            .map_err(|e: canary_rollout::UnknownCommand| (StatusCode::NOT_FOUND, e.to_string()))?;
        Ok(if command == Command::Promote && full {
            Command::PromoteFull
        } else {
            command
        })
    };
    let get = |route: Route| {
        if method == Method::GET {
            Ok(route)
        } else {
            Err((
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{path} answers GET"),
            ))
        }
    };
    let post = |route: Route| {
        if method == Method::POST {
            Ok(route)
        } else {
            Err((
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{path} answers POST"),
            ))
        }
    };
    match segments.as_slice() {
        ["healthz"] => get(Route::Health),
        ["readyz"] => get(Route::Ready),
        ["metrics"] => get(Route::Metrics),
        ["status"] => get(Route::Status(None)),
        ["rollouts"] => get(Route::List),
        ["rollouts", id @ ..] if !id.is_empty() && method == Method::GET => {
            get(Route::Status(Some(id.join("/"))))
        }
        ["rollouts", id @ .., name] if !id.is_empty() => {
            post(Route::Command(Some(id.join("/")), command(name)?))
        }
        ["promote", "full"] => post(Route::Command(None, Command::PromoteFull)),
        [name] => post(Route::Command(None, command(name)?)),
        _ => Err((StatusCode::NOT_FOUND, format!("no such path: {path}"))),
    }
}

async fn handle(
    state: ApiState,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let route = match route(request.method(), &path, &query) {
        Ok(route) => route,
        Err((status, message)) => return Ok(error(status, &message)),
    };
    let response = match route {
        Route::Health => text(StatusCode::OK, "ok\n"),
        Route::Ready => match state.board.ready(state.readiness) {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("not ready: {why}\n"),
            ),
        },
        Route::Status(id) => match state.board.report(id.as_deref()) {
            Some(report) => json_response(StatusCode::OK, &report),
            None => error(StatusCode::NOT_FOUND, "no rollout loaded"),
        },
        Route::List => json_response(StatusCode::OK, &state.board.reports()),
        Route::Metrics => {
            let mut response = text(StatusCode::OK, &state.board.metrics.render());
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        Route::Command(id, command) => {
            if !authorized(&state, &request) {
                warn!("refused {command}: missing or wrong bearer token");
                error(
                    StatusCode::UNAUTHORIZED,
                    "this API needs `Authorization: Bearer <token>` for commands",
                )
            } else {
                run_command(&state, id, command).await
            }
        }
    };
    Ok(response)
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

async fn run_command(
    state: &ApiState,
    rollout: Option<String>,
    command: Command,
) -> Response<Full<Bytes>> {
    let (reply, answer) = oneshot::channel();
    let request = CommandRequest {
        rollout,
        command,
        reply,
    };
    if state.commands.send(request).await.is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the controller loop is not running",
        );
    }
    match answer.await {
        Ok(Ok(report)) => json_response(StatusCode::OK, &report),
        Ok(Err(refusal @ Refusal::NoSuchRollout(_))) => {
            error(StatusCode::NOT_FOUND, &refusal.to_string())
        }
        Ok(Err(refusal @ Refusal::Unavailable(_))) => {
            error(StatusCode::SERVICE_UNAVAILABLE, &refusal.to_string())
        }
        Ok(Err(refusal)) => error(StatusCode::CONFLICT, &refusal.to_string()),
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

    fn post(path: &str, query: &str) -> Result<Route, (StatusCode, String)> {
        route(&Method::POST, path, query)
    }

    #[test]
    fn command_paths_use_the_commands_own_names() {
        assert_eq!(
            post("/promote", ""),
            Ok(Route::Command(None, Command::Promote))
        );
        assert_eq!(
            post("/promote", "full=true"),
            Ok(Route::Command(None, Command::PromoteFull))
        );
        assert_eq!(
            post("/promote-full", ""),
            Ok(Route::Command(None, Command::PromoteFull))
        );
        assert_eq!(
            post("/promote/full", ""),
            Ok(Route::Command(None, Command::PromoteFull))
        );
        assert_eq!(
            post("/rollouts/shop/web/abort", ""),
            Ok(Route::Command(Some("shop/web".into()), Command::Abort))
        );
        assert_eq!(
            route(&Method::GET, "/rollouts/shop/web", ""),
            Ok(Route::Status(Some("shop/web".into())))
        );
        assert_eq!(post("/rollback", "").unwrap_err().0, StatusCode::NOT_FOUND);
        assert_eq!(
            post("/status", "").unwrap_err().0,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
