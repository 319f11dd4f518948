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
//! | `POST /session` | a browser's sign-in: the token in, a session cookie and the CSRF value out |
//!
//! Who may call what is [`crate::auth`]'s (`docs/api-auth.md`); what one
//! client may hold is [`crate::limits`]'s.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use canary_rollout::Command;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::auth::{self, Actor, Denied, Peer, Token};
use crate::{Board, CommandRequest, Limits, Readiness, Refusal};

/// What the API needs.
#[derive(Clone)]
pub struct ApiState {
    /// Reports and metrics.
    pub board: Arc<Board>,
    /// Commands to the shell.
    pub commands: mpsc::Sender<CommandRequest>,
    /// The token reads and commands need (`None`: open, only with
    /// `--insecure`).
    pub token: Option<Token>,
    /// When `/readyz` answers 200.
    pub readiness: Readiness,
    /// What one client may hold.
    pub limits: Limits,
}

/// A listening API.
pub struct Listening {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The accepting task.
    pub task: tokio::task::JoinHandle<()>,
    connections: Arc<Semaphore>,
    max_connections: usize,
}

impl Listening {
    /// Connections being served now.
    pub fn open_connections(&self) -> usize {
        self.max_connections - self.connections.available_permits()
    }
}

/// Longest pause between accept attempts after errors (e.g. out of file
/// descriptors); the pause doubles from 10 ms while errors go on.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Binds `addr` and serves (over TLS with `tls`) until the task is
/// dropped.
pub async fn serve(
    addr: SocketAddr,
    state: ApiState,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<Listening> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let max_connections = state.limits.max_connections.max(1);
    let connections = Arc::new(Semaphore::new(max_connections));
    let slots = Arc::clone(&connections);
    let acceptor = tls.map(TlsAcceptor::from);
    let task = tokio::spawn(async move {
        let mut backoff = Duration::ZERO;
        loop {
            // A slot first: past the cap, connections wait in the listen
            // queue and hold none of this process's descriptors.
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let (stream, addr) = match listener.accept().await {
                Ok(accepted) => {
                    backoff = Duration::ZERO;
                    accepted
                }
                Err(err) => {
                    drop(slot);
                    if backoff.is_zero() {
                        warn!("the API cannot accept connections: {err}; backing off");
                    }
                    backoff = (backoff * 2)
                        .max(Duration::from_millis(10))
                        .min(ACCEPT_BACKOFF_MAX);
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            let state = state.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let peer = Peer {
                    addr,
                    tls: acceptor.is_some(),
                };
                match acceptor {
                    None => connection(TokioIo::new(stream), state, peer).await,
                    Some(acceptor) => {
                        let limit = state.limits.header_timeout;
                        match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => connection(TokioIo::new(stream), state, peer).await,
                            Ok(Err(err)) => debug!("TLS handshake with {addr} failed: {err}"),
                            Err(_) => debug!("TLS handshake with {addr} timed out"),
                        }
                    }
                }
                drop(slot);
            });
        }
    });
    Ok(Listening {
        addr: bound,
        task,
        connections,
        max_connections,
    })
}

/// Serves one connection: headers must arrive within the header timeout,
/// which also closes a keep-alive connection left idle that long.
async fn connection<I>(io: TokioIo<I>, state: ApiState, peer: Peer)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = state.limits.clone();
    let service = service_fn(move |request| handle(state.clone(), peer, request));
    if let Err(err) = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(64 * 1024)
        .max_headers(64)
        .serve_connection(io, service)
        .await
    {
        debug!("API connection from {}: {err}", peer.addr);
    }
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
    SignIn,
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
        ["session"] => post(Route::SignIn),
        ["promote", "full"] => post(Route::Command(None, Command::PromoteFull)),
        [name] => post(Route::Command(None, command(name)?)),
        _ => Err((StatusCode::NOT_FOUND, format!("no such path: {path}"))),
    }
}

async fn handle(
    state: ApiState,
    peer: Peer,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let route = match route(request.method(), &path, &query) {
        Ok(route) => route,
        Err((status, message)) => return Ok(error(status, &message)),
    };
    let token = state.token.as_ref();
    let response = match route {
        Route::Health => text(StatusCode::OK, "ok\n"),
        Route::Ready => match state.board.ready(state.readiness) {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("not ready: {why}\n"),
            ),
        },
        Route::Metrics => {
            let mut response = text(StatusCode::OK, &state.board.metrics.render());
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        Route::Status(id) => match auth::check_read(token, request.headers(), peer) {
            Err(denied) => refused(&path, peer, denied),
            Ok(_) => match state.board.report(id.as_deref()) {
                Some(report) => json_response(StatusCode::OK, &report),
                None => error(StatusCode::NOT_FOUND, "no rollout loaded"),
            },
        },
        Route::List => match auth::check_read(token, request.headers(), peer) {
            Err(denied) => refused(&path, peer, denied),
            Ok(_) => json_response(StatusCode::OK, &state.board.reports()),
        },
        Route::SignIn => sign_in(&state, peer, request).await,
        Route::Command(id, command) => match auth::check_mutation(token, request.headers(), peer) {
            Err(denied) => refused(&path, peer, denied),
            Ok(actor) => run_command(&state, id, command, actor).await,
        },
    };
    Ok(response)
}

fn refused(path: &str, peer: Peer, denied: Denied) -> Response<Full<Bytes>> {
    warn!(peer = %peer.addr, "refused {path}: {}", denied.reason);
    error(denied.status, &denied.reason)
}

/// `POST /session`: checks the token (JSON body or bearer header) and
/// answers the session cookie and the CSRF value.
async fn sign_in(
    state: &ApiState,
    peer: Peer,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    if let Err(denied) = auth::check_sign_in(request.headers(), peer) {
        return refused("/session", peer, denied);
    }
    let Some(token) = &state.token else {
        return error(
            StatusCode::NOT_FOUND,
            "this API has no token: there is nothing to sign in to",
        );
    };
    let (parts, body) = request.into_parts();
    let limits = &state.limits;
    let read = tokio::time::timeout(
        limits.header_timeout,
        Limited::new(body, limits.max_body).collect(),
    )
    .await;
    let body = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body is larger than {} bytes", limits.max_body),
            )
        }
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive in time",
            )
        }
    };
    let value: serde_json::Value = if body.is_empty() {
        serde_json::Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(value) => value,
            Err(err) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("the body is not JSON: {err}"),
                )
            }
        }
    };
    let given = auth::sign_in_token(&parts.headers, &value).unwrap_or_default();
    if !token.matches(given) {
        return refused(
            "/session",
            peer,
            Denied {
                status: StatusCode::UNAUTHORIZED,
                reason: "wrong token".into(),
            },
        );
    }
    info!(peer = %peer.addr, "a browser signed in");
    let mut response = json_response(
        StatusCode::OK,
        &json!({ "csrf": token.csrf(), "csrfHeader": auth::CSRF_HEADER }),
    );
    if let Ok(cookie) = HeaderValue::from_str(&token.session_cookie(peer.tls)) {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    response
}

async fn run_command(
    state: &ApiState,
    rollout: Option<String>,
    command: Command,
    by: Actor,
) -> Response<Full<Bytes>> {
    let deadline = Instant::now() + state.limits.command_deadline;
    info!(%command, by = %by, "command received");
    let (request, answer) = CommandRequest::new(rollout, command, by, deadline);
    match tokio::time::timeout_at(deadline, state.commands.send(request)).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the controller loop is not running",
            )
        }
        Err(_) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the controller is busy: the command was not taken in time and is not carried out",
            )
        }
    }
    let answer =
        match tokio::time::timeout(state.limits.answer_wait, answer).await {
            Ok(answer) => answer,
            Err(_) => return error(
                StatusCode::GATEWAY_TIMEOUT,
                "no answer in time: look at the status to see whether the command was carried out",
            ),
        };
    match answer {
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
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
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
