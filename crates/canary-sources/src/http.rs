//! The HTTP client the providers share: one connection pool, TLS through
//! rustls, a timeout on every request, and bodies read in full (capped) so a
//! misbehaving endpoint cannot exhaust memory.

use std::time::Duration;

/// Largest body a provider reads (Prometheus answers and web metrics are
/// small; Envoy's filtered stats are a few hundred kilobytes at most).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("{0}")]
    Transport(String),
    #[error("the answer is larger than {MAX_BODY} bytes")]
    TooLarge,
}

/// HTTP methods the providers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
}

/// A request under construction.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    method: Method,
    url: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    timeout: Duration,
    insecure: bool,
}

impl HttpRequest {
    /// A GET of `url`, with a 10 s timeout.
    pub fn get(url: &str) -> HttpRequest {
        HttpRequest::new(Method::Get, url)
    }

    /// A request of any method.
    pub fn new(method: Method, url: &str) -> HttpRequest {
        HttpRequest {
            method,
            url: url.to_owned(),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            timeout: Duration::from_secs(10),
            insecure: false,
        }
    }

    /// Adds a query parameter (encoded when sent).
    pub fn query(mut self, name: &str, value: &str) -> HttpRequest {
        self.query.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> HttpRequest {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Vec<u8>) -> HttpRequest {
        self.body = Some(body);
        self
    }

    /// Sets the timeout for the whole exchange.
    pub fn timeout(mut self, timeout: Duration) -> HttpRequest {
        self.timeout = timeout;
        self
    }

    /// Skips TLS certificate verification (a template's `insecure: true`).
    pub fn insecure(mut self, insecure: bool) -> HttpRequest {
        self.insecure = insecure;
        self
    }
}

/// A complete answer.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// The whole body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The start of the body as text, for error messages.
    pub fn text_excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        match text.char_indices().nth(200) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.to_owned(),
        }
    }
}

/// A shared client (cheap to clone).
#[derive(Debug, Clone)]
pub struct HttpClient {
    verified: reqwest::Client,
    unverified: reqwest::Client,
}

impl HttpClient {
    /// A client with connection pooling.
    pub fn new() -> Result<HttpClient, HttpError> {
        HttpClient::trusting(None)
    }

    /// A client that also trusts the PEM certificates in `roots` (e.g. a
    /// self-signed certificate of the controller's API).
    pub fn trusting(roots: Option<&[u8]>) -> Result<HttpClient, HttpError> {
        let extra = match roots {
            Some(pem) => reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|err| HttpError::Invalid(format!("the trusted certificates: {err}")))?,
            None => Vec::new(),
        };
        let build = |insecure: bool| {
            let mut builder = reqwest::Client::builder()
                .danger_accept_invalid_certs(insecure)
                .pool_idle_timeout(Duration::from_secs(60))
                .user_agent(concat!("canary/", env!("CARGO_PKG_VERSION")));
            for certificate in &extra {
                builder = builder.add_root_certificate(certificate.clone());
            }
            builder
                .build()
                .map_err(|err| HttpError::Invalid(err.to_string()))
        };
        Ok(HttpClient {
            verified: build(false)?,
            unverified: build(true)?,
        })
    }

    /// Sends a request and reads the whole answer.
    pub async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let client = if request.insecure {
            &self.unverified
        } else {
            &self.verified
        };
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
        };
        let mut url = reqwest::Url::parse(&request.url).map_err(|err| {
            HttpError::Invalid(format!("{}: {err}", crate::redact::url(&request.url)))
        })?;
        if !request.query.is_empty() {
            url.query_pairs_mut().extend_pairs(request.query.iter());
        }
        let mut builder = client.request(method, url).timeout(request.timeout);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let timeout = request.timeout;
        let classify = move |err: reqwest::Error| {
            // The caller names the URL, redacted: reqwest's own message
            // would show it whole, secrets included.
            let err = err.without_url();
            if err.is_timeout() {
                HttpError::Timeout(timeout)
            } else if err.is_connect() {
                HttpError::Connect(error_chain(&err))
            } else if err.is_builder() {
                HttpError::Invalid(error_chain(&err))
            } else {
                HttpError::Transport(error_chain(&err))
            }
        };
        let mut response = builder.send().await.map_err(classify)?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse { status, body })
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
