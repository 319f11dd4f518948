//! A fake Kubernetes API server on loopback, for tests of the code that
//! talks to a real one.
//!
//! It plays a script: each [`Exchange`] names the request expected next
//! (method, exact path, and query parameters) and the answer to give. Query
//! parameters are compared decoded and in any order, as the API server
//! reads them (kube writes `?&a=1&b=2` where a person writes `?b=2&a=1`).
//! Every
//! request is recorded as received, so a test asserts exactly what was
//! sent (method, path, query, content type, field manager, body) with
//! [`FakeApiServer::requests`], and that nothing expected was left out with
//! [`FakeApiServer::unused_exchanges`]. A request that does not match the
//! next exchange is answered `500` with a `Status` saying so, and the
//! exchange stays unused.
//!
//! Point a client at it with [`crate::client_for_url`] and
//! [`FakeApiServer::url`]. The server stops when dropped.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One expected request and the answer to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// HTTP method, upper case (`GET`, `PATCH`).
    pub method: String,
    /// Path and query the client must send
    /// (`/api/v1/namespaces/shop/pods?labelSelector=app%3Dweb`).
    pub target: String,
    /// What the fake answers.
    pub response: CannedResponse,
}

impl Exchange {
    /// Expect `method target`, answer `response`.
    pub fn new(method: &str, target: &str, response: CannedResponse) -> Exchange {
        Exchange {
            method: method.to_owned(),
            target: target.to_owned(),
            response,
        }
    }
}

/// An answer of the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannedResponse {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type` header.
    pub content_type: String,
    /// Body.
    pub body: String,
}

impl CannedResponse {
    /// A JSON body.
    pub fn json(status: u16, body: &Value) -> CannedResponse {
        CannedResponse {
            status,
            content_type: "application/json".to_owned(),
            body: body.to_string(),
        }
    }

    /// A Kubernetes `Status` failure, as the API server sends with every
    /// error (`reason`: `NotFound`, `Forbidden`, `InternalError`…).
    pub fn status(code: u16, reason: &str, message: &str) -> CannedResponse {
        CannedResponse::json(
            code,
            &json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": reason,
                "code": code,
            }),
        )
    }

    /// A body that is not JSON, as a proxy in front of the API server
    /// might send.
    pub fn text(status: u16, body: &str) -> CannedResponse {
        CannedResponse {
            status,
            content_type: "text/plain".to_owned(),
            body: body.to_owned(),
        }
    }
}

/// A request as the fake received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// Raw query string, without `?`; `None` when there was none.
    pub query: Option<String>,
    /// Headers, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The query's parameters, decoded and sorted, empty segments dropped.
    pub fn query_params(&self) -> Vec<(String, String)> {
        decoded_params(self.query.as_deref().unwrap_or(""))
    }

    /// The body as JSON; `None` when it is not JSON.
    pub fn body_json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

#[derive(Default)]
struct FakeState {
    script: VecDeque<Exchange>,
    received: Vec<RecordedRequest>,
}

/// The running fake. Stops accepting connections when dropped.
pub struct FakeApiServer {
    url: String,
    state: Arc<Mutex<FakeState>>,
    accept_loop: JoinHandle<()>,
}

impl FakeApiServer {
    /// Starts a fake on `127.0.0.1` and an ephemeral port that plays
    /// `script` in order. Must be called inside a Tokio runtime.
    pub async fn start(script: Vec<Exchange>) -> std::io::Result<FakeApiServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(FakeState {
            script: script.into(),
            received: Vec::new(),
        }));
        let accept_loop = tokio::spawn(accept_connections(listener, Arc::clone(&state)));
        Ok(FakeApiServer {
            url,
            state,
            accept_loop,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).received.clone()
    }

    /// Exchanges of the script no request has matched yet.
    pub fn unused_exchanges(&self) -> Vec<Exchange> {
        lock(&self.state).script.iter().cloned().collect()
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

/// The state, even if a test panicked while holding it.
fn lock(state: &Mutex<FakeState>) -> MutexGuard<'_, FakeState> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn accept_connections(listener: TcpListener, state: Arc<Mutex<FakeState>>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "fake API server: accept failed");
                continue;
            }
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(Arc::clone(&state), request));
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "fake API server: connection ended");
            }
        });
    }
}

async fn answer(
    state: Arc<Mutex<FakeState>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(error) => format!("<body unreadable: {error}>").into_bytes(),
    };
    let recorded = RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect(),
        body,
    };
    let response = {
        let mut state = lock(&state);
        let response = next_response(&mut state.script, &recorded);
        state.received.push(recorded);
        response
    };
    Ok(http_response(&response))
}

/// The scripted answer when the request is the one expected next, else a
/// 500 that names the difference.
fn next_response(script: &mut VecDeque<Exchange>, request: &RecordedRequest) -> CannedResponse {
    let received = match &request.query {
        Some(query) => format!("{} {}?{query}", request.method, request.path),
        None => format!("{} {}", request.method, request.path),
    };
    let unexpected = |expected: String| {
        let message =
            format!("fake API server: unexpected request {received}; expected {expected}");
        tracing::warn!("{message}");
        CannedResponse::status(500, "InternalError", &message)
    };
    match script.front() {
        Some(next) if matches(next, request) => match script.pop_front() {
            Some(exchange) => exchange.response,
            None => unexpected("nothing".to_owned()),
        },
        Some(next) => unexpected(format!("{} {}", next.method, next.target)),
        None => unexpected("no more requests".to_owned()),
    }
}

/// Whether `request` is the one `exchange` expects.
fn matches(exchange: &Exchange, request: &RecordedRequest) -> bool {
    let (path, query) = exchange
        .target
        .split_once('?')
        .unwrap_or((exchange.target.as_str(), ""));
    exchange.method == request.method
        && path == request.path
        && decoded_params(query) == request.query_params()
}

fn decoded_params(query: &str) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .filter(|(key, value)| !(key.is_empty() && value.is_empty()))
        .collect();
    params.sort();
    params
}

fn http_response(canned: &CannedResponse) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(canned.body.clone())));
    *response.status_mut() =
        StatusCode::from_u16(canned.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(content_type) = hyper::header::HeaderValue::from_str(&canned.content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, content_type);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str, query: Option<&str>) -> RecordedRequest {
        RecordedRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.map(str::to_owned),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn expecting(target: &str) -> Exchange {
        Exchange::new("PATCH", target, CannedResponse::text(200, "ok"))
    }

    #[test]
    fn query_parameters_match_decoded_in_any_order() {
        let sent = request(
            "PATCH",
            "/x",
            Some("&force=true&fieldManager=canary%2Dcontroller"),
        );
        assert!(matches(
            &expecting("/x?fieldManager=canary-controller&force=true"),
            &sent
        ));
        assert!(!matches(
            &expecting("/x?fieldManager=canary-controller"),
            &sent
        ));
        assert!(!matches(
            &expecting("/x?fieldManager=other&force=true"),
            &sent
        ));
        assert!(!matches(
            &expecting("/y?fieldManager=canary-controller&force=true"),
            &sent
        ));
        let get = request(
            "GET",
            "/x",
            Some("force=true&fieldManager=canary-controller"),
        );
        assert!(!matches(
            &expecting("/x?fieldManager=canary-controller&force=true"),
            &get
        ));
    }

    #[test]
    fn a_mismatch_keeps_the_exchange_and_names_both_requests() {
        let mut script = VecDeque::from([expecting("/x?a=1")]);
        let answer = next_response(&mut script, &request("PATCH", "/x", Some("a=2")));
        assert_eq!(answer.status, 500);
        assert!(answer
            .body
            .contains("unexpected request PATCH /x?a=2; expected PATCH /x?a=1"));
        assert_eq!(script.len(), 1);
        let answer = next_response(&mut script, &request("PATCH", "/x", Some("a=1")));
        assert_eq!(answer.status, 200);
        assert!(script.is_empty());
    }
}
