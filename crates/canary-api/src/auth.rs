//! Who may steer: the API's one auth model, the same for every client
//! (written down in `docs/api-auth.md`).
//!
//! - Probes (`/healthz`, `/readyz`) and `/metrics` are open.
//! - Everything else needs the token once one is configured: the CLI and
//!   scripts send `Authorization: Bearer <token>`; a browser signs in once
//!   (`POST /session` with the token) and then carries a session cookie
//!   derived from the token (`HttpOnly; SameSite=Strict`), plus the CSRF
//!   value it got at sign-in in the `X-Canary-CSRF` header on every
//!   command.
//! - A mutation from another origin, or with a body type a plain HTML
//!   form can send, is refused before the token is looked at.
//! - The token is kept only as a SHA-256 digest and compared in constant
//!   time: digests have one length, so the compare does not reveal the
//!   token's length either.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use hyper::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, COOKIE, HOST, ORIGIN};
use hyper::StatusCode;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "canary_session";

/// The header a browser sends its CSRF value in. An HTML form cannot set
/// a header, and a script on another origin cannot send it without a
/// CORS preflight, which this API never grants.
pub const CSRF_HEADER: &str = "x-canary-csrf";

/// Where `canary run` keeps the token it generates, and where the CLI
/// looks for it, when neither is told otherwise (relative to the working
/// directory, next to the default state files).
pub const DEFAULT_TOKEN_FILE: &str = ".canary/api-token";

/// The API token. Only digests are kept; `Debug` shows none of it.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
    session: String,
    csrf: String,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(redacted)")
    }
}

/// Why a token cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Empty or blank.
    #[error("the API token is empty")]
    Empty,
    /// Characters a header cannot carry.
    #[error("the API token must be printable ASCII without spaces")]
    Unprintable,
}

impl Token {
    /// The token `secret` (surrounding whitespace is ignored).
    pub fn new(secret: &str) -> Result<Token, TokenError> {
        let secret = secret.trim();
        if secret.is_empty() {
            return Err(TokenError::Empty);
        }
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::Unprintable);
        }
        Ok(Token {
            digest: digest("canary-api-token", secret),
            session: hex(&digest("canary-api-session", secret)),
            csrf: hex(&digest("canary-api-csrf", secret)),
        })
    }

    /// A fresh random token (256 bits, hex).
    pub fn generate() -> Result<String, std::io::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(hex(&bytes))
    }

    /// Whether `given` is the token.
    pub fn matches(&self, given: &str) -> bool {
        bool::from(digest("canary-api-token", given).ct_eq(&self.digest))
    }

    fn session_matches(&self, given: &str) -> bool {
        same(given, &self.session)
    }

    fn csrf_matches(&self, given: &str) -> bool {
        same(given, &self.csrf)
    }

    /// The CSRF value a signed-in browser sends in [`CSRF_HEADER`].
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// The `Set-Cookie` value of a session (`Secure` over TLS).
    pub fn session_cookie(&self, tls: bool) -> String {
        format!(
            "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{}",
            self.session,
            if tls { "; Secure" } else { "" }
        )
    }
}

/// Constant-time equality of two strings of any lengths: both are hashed
/// first, so neither the content nor the length shows in the time taken.
fn same(given: &str, expected: &str) -> bool {
    bool::from(digest("compare", given).ct_eq(&digest("compare", expected)))
}

fn digest(purpose: &str, secret: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(purpose.as_bytes());
    hasher.update([0]);
    hasher.update(secret.as_bytes());
    hasher.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Who sent a request: the kind of credential and the peer's address.
/// Recorded with every command, in the events and in the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `cli` (bearer token), `browser` (session cookie), `anonymous` (no
    /// token configured) or an in-process client's name (`demo`).
    pub who: String,
    /// The peer's address, for API clients.
    pub peer: Option<SocketAddr>,
}

impl Actor {
    /// An in-process client (no address).
    pub fn local(who: &str) -> Actor {
        Actor {
            who: who.to_owned(),
            peer: None,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.peer {
            Some(peer) => write!(f, "{} from {peer}", self.who),
            None => f.write_str(&self.who),
        }
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// The answer's status.
    pub status: StatusCode,
    /// Why, for the client.
    pub reason: String,
}

fn denied(status: StatusCode, reason: impl Into<String>) -> Denied {
    Denied {
        status,
        reason: reason.into(),
    }
}

/// The request's context the checks need.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// Who sent a read (`/status`, `/rollouts`): open when no token is
/// configured, else the bearer token or a session cookie.
pub fn check_read(token: Option<&Token>, headers: &HeaderMap, peer: Peer) -> Result<Actor, Denied> {
    let Some(token) = token else {
        return Ok(actor("anonymous", peer));
    };
    if let Some(given) = bearer(headers) {
        return by_bearer(token, given, peer);
    }
    match session(headers) {
        Some(cookie) if token.session_matches(cookie) => Ok(actor("browser", peer)),
        _ => Err(unauthorized()),
    }
}

/// Who sent a command: the request must come from this API's own origin,
/// not be form-encoded, and carry the bearer token or a session cookie
/// with its CSRF header.
pub fn check_mutation(
    token: Option<&Token>,
    headers: &HeaderMap,
    peer: Peer,
) -> Result<Actor, Denied> {
    same_origin(headers, peer.tls)?;
    not_a_form(headers)?;
    let Some(token) = token else {
        return Ok(actor("anonymous", peer));
    };
    if let Some(given) = bearer(headers) {
        return by_bearer(token, given, peer);
    }
    let Some(cookie) = session(headers) else {
        return Err(unauthorized());
    };
    if !token.session_matches(cookie) {
        return Err(denied(
            StatusCode::UNAUTHORIZED,
            "the session is not valid (the token changed?): sign in again",
        ));
    }
    let csrf = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !token.csrf_matches(csrf) {
        return Err(denied(
            StatusCode::FORBIDDEN,
            format!("a browser's command needs the {CSRF_HEADER} header it got at sign-in"),
        ));
    }
    Ok(actor("browser", peer))
}

/// Checks a sign-in request's origin and body type (the token itself is
/// in its JSON body or its `Authorization` header).
pub fn check_sign_in(headers: &HeaderMap, peer: Peer) -> Result<(), Denied> {
    same_origin(headers, peer.tls)?;
    not_a_form(headers)?;
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| media_type(v) == "application/json");
    if bearer(headers).is_none() && !json {
        return Err(denied(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "sign in with a JSON body {\"token\": \"…\"} or an Authorization: Bearer header",
        ));
    }
    Ok(())
}

/// The token a sign-in request carries.
pub fn sign_in_token<'a>(headers: &'a HeaderMap, body: &'a serde_json::Value) -> Option<&'a str> {
    bearer(headers).or_else(|| body.get("token").and_then(|t| t.as_str()))
}

/// A bearer token is the CLI's (or a script's) credential.
fn by_bearer(token: &Token, given: &str, peer: Peer) -> Result<Actor, Denied> {
    if token.matches(given) {
        Ok(actor("cli", peer))
    } else {
        Err(denied(StatusCode::UNAUTHORIZED, "wrong token"))
    }
}

fn actor(who: &str, peer: Peer) -> Actor {
    Actor {
        who: who.to_owned(),
        peer: Some(peer.addr),
    }
}

fn unauthorized() -> Denied {
    denied(
        StatusCode::UNAUTHORIZED,
        "this API needs `Authorization: Bearer <token>` (the CLI reads it from --token-file, CANARY_TOKEN or .canary/api-token)",
    )
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

fn session(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
}

/// A browser names the page's origin in `Origin` (and says how it relates
/// in `Sec-Fetch-Site`); either naming another site refuses the request.
/// Clients that send neither (the CLI, curl) are not browsers on another
/// site, and are judged by their token alone.
fn same_origin(headers: &HeaderMap, tls: bool) -> Result<(), Denied> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site == "cross-site" || site == "same-site" {
            return Err(denied(
                StatusCode::FORBIDDEN,
                "cross-origin requests cannot steer the rollout",
            ));
        }
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let scheme = if tls { "https" } else { "http" };
    if host.is_empty() || origin != format!("{scheme}://{host}") {
        return Err(denied(
            StatusCode::FORBIDDEN,
            format!("cross-origin requests cannot steer the rollout (Origin {origin:?})"),
        ));
    }
    Ok(())
}

/// Body types an HTML form can send without a CORS preflight.
const FORM_TYPES: [&str; 3] = [
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "text/plain",
];

fn not_a_form(headers: &HeaderMap) -> Result<(), Denied> {
    let Some(kind) = headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    let kind = kind.to_str().map(media_type).unwrap_or_default();
    if kind.is_empty() || FORM_TYPES.contains(&kind.as_str()) {
        return Err(denied(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "form-encoded requests cannot steer the rollout; send no body or JSON",
        ));
    }
    Ok(())
}

fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// Reading, creating or writing failed.
    #[error("token file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no usable token.
    #[error("token file {path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        reason: TokenError,
    },
}

/// Reads the token in `path`.
pub fn read_token_file(path: &Path) -> Result<String, TokenFileError> {
    let io = |source| TokenFileError::Io {
        path: path.display().to_string(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(io)?;
    let token = text.trim().to_owned();
    Token::new(&token).map_err(|reason| TokenFileError::Invalid {
        path: path.display().to_string(),
        reason,
    })?;
    Ok(token)
}

/// Whether a token file can be read by others than its owner (mode).
pub fn readable_by_others(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// The token in `path`, generated into it (mode 0600, its folder made
/// 0700) when the file does not exist yet. Returns the token and whether
/// it was generated. Two processes starting together end up with the
/// same token: the file appears whole or not at all.
pub fn load_or_create_token_file(path: &Path) -> Result<(String, bool), TokenFileError> {
    match read_token_file(path) {
        Ok(token) => return Ok((token, false)),
        Err(TokenFileError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
        }
        Err(other) => return Err(other),
    }
    let io = |source| TokenFileError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            std::fs::create_dir_all(parent).map_err(io)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))
                    .map_err(io)?;
            }
        }
    }
    let token = Token::generate().map_err(io)?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = std::path::PathBuf::from(temporary);
    write_private(&temporary, token.as_bytes()).map_err(io)?;
    let linked = std::fs::hard_link(&temporary, path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok((token, true)),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            read_token_file(path).map(|token| (token, false))
        }
        Err(err) => Err(io(err)),
    }
}

/// Where a token comes from, for the controller and the CLI alike.
#[derive(Debug, Clone, Default)]
pub struct TokenSources {
    /// `--token` on the command line (visible to every local user in
    /// `/proc/PID/cmdline`: warned about).
    pub flag: Option<String>,
    /// `CANARY_TOKEN`.
    pub env: Option<String>,
    /// `--token-file` or `CANARY_TOKEN_FILE`.
    pub file: Option<std::path::PathBuf>,
}

/// The warning printed when the token is given on the command line.
pub const TOKEN_FLAG_WARNING: &str = "--token on the command line is visible to every local user (ps, /proc/PID/cmdline); prefer --token-file or CANARY_TOKEN";

impl TokenSources {
    /// The sources of this process: `flag` and `file` from its
    /// arguments, the environment's `CANARY_TOKEN` and
    /// `CANARY_TOKEN_FILE`.
    pub fn from_env(flag: Option<String>, file: Option<std::path::PathBuf>) -> TokenSources {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        TokenSources {
            flag,
            env: var("CANARY_TOKEN"),
            file: file.or_else(|| var("CANARY_TOKEN_FILE").map(Into::into)),
        }
    }

    /// The token file in use: the one named, else [`DEFAULT_TOKEN_FILE`].
    pub fn file_path(&self) -> std::path::PathBuf {
        self.file
            .clone()
            .unwrap_or_else(|| std::path::PathBuf::from(DEFAULT_TOKEN_FILE))
    }

    /// The controller's token: `--token`, else `CANARY_TOKEN`, else the
    /// token file's, generated into it when it does not exist. Also says
    /// where it came from, for the log.
    pub fn for_server(&self) -> Result<(String, String), TokenFileError> {
        if let Some(token) = self.given() {
            return Ok(token);
        }
        let path = self.file_path();
        let (token, created) = load_or_create_token_file(&path)?;
        let place = if created {
            format!("generated into {} (mode 0600)", path.display())
        } else {
            format!("read from {}", path.display())
        };
        Ok((token, place))
    }

    /// The CLI's token: `--token`, else `CANARY_TOKEN`, else the token
    /// file's. A missing default file gives none (the controller may have
    /// been started with its token elsewhere); a missing named file is an
    /// error.
    pub fn for_client(&self) -> Result<Option<String>, TokenFileError> {
        if let Some((token, _)) = self.given() {
            return Ok(Some(token));
        }
        let path = self.file_path();
        match read_token_file(&path) {
            Ok(token) => Ok(Some(token)),
            Err(TokenFileError::Io { source, .. })
                if self.file.is_none() && source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(None)
            }
            Err(other) => Err(other),
        }
    }

    fn given(&self) -> Option<(String, String)> {
        if let Some(token) = &self.flag {
            return Some((token.trim().to_owned(), "given with --token".into()));
        }
        self.env
            .as_ref()
            .map(|token| (token.trim().to_owned(), "given in CANARY_TOKEN".into()))
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn peer() -> Peer {
        Peer {
            addr: "127.0.0.1:5000".parse().expect("addr"),
            tls: false,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("value"));
        }
        map
    }

    #[test]
    fn the_token_is_compared_whole() {
        let token = Token::new("abc123").expect("token");
        assert!(token.matches("abc123"));
        assert!(!token.matches("abc12"));
        assert!(!token.matches("abc1234"));
        assert!(!token.matches(""));
        assert_eq!(format!("{token:?}"), "Token(redacted)");
        assert_eq!(Token::new("  ").unwrap_err(), TokenError::Empty);
    }

    #[test]
    fn commands_from_another_origin_or_a_form_are_refused_even_with_the_token() {
        let token = Token::new("t0k3n").expect("token");
        let ok = check_mutation(
            Some(&token),
            &headers(&[
                ("authorization", "Bearer t0k3n"),
                ("host", "127.0.0.1:7070"),
            ]),
            peer(),
        )
        .expect("cli");
        assert_eq!(ok.to_string(), "cli from 127.0.0.1:5000");
        let evil = check_mutation(
            Some(&token),
            &headers(&[
                ("authorization", "Bearer t0k3n"),
                ("host", "127.0.0.1:7070"),
                ("origin", "http://evil.example"),
            ]),
            peer(),
        )
        .unwrap_err();
        assert_eq!(evil.status, StatusCode::FORBIDDEN);
        for kind in [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/plain;charset=UTF-8",
        ] {
            let form = check_mutation(
                Some(&token),
                &headers(&[("authorization", "Bearer t0k3n"), ("content-type", kind)]),
                peer(),
            )
            .unwrap_err();
            assert_eq!(form.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{kind}");
        }
        let same = check_mutation(
            Some(&token),
            &headers(&[
                ("authorization", "Bearer t0k3n"),
                ("host", "127.0.0.1:7070"),
                ("origin", "http://127.0.0.1:7070"),
                ("content-type", "application/json"),
            ]),
            peer(),
        );
        assert!(same.is_ok(), "{same:?}");
    }

    #[test]
    fn a_browser_needs_the_session_cookie_and_the_csrf_header() {
        let token = Token::new("t0k3n").expect("token");
        let cookie = token.session_cookie(false);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        let value = cookie.split(';').next().expect("pair").trim().to_owned();
        let without =
            check_mutation(Some(&token), &headers(&[("cookie", &value)]), peer()).unwrap_err();
        assert_eq!(without.status, StatusCode::FORBIDDEN);
        let with = check_mutation(
            Some(&token),
            &headers(&[("cookie", &value), (CSRF_HEADER, token.csrf())]),
            peer(),
        )
        .expect("browser");
        assert_eq!(with.who, "browser");
        let read = check_read(Some(&token), &headers(&[("cookie", &value)]), peer());
        assert!(read.is_ok());
        let none = check_read(Some(&token), &headers(&[]), peer()).unwrap_err();
        assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    }

    #[cfg(unix)]
    #[test]
    fn a_generated_token_file_is_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("sub").join("api-token");
        let (first, created) = load_or_create_token_file(&path).expect("created");
        assert!(created);
        assert_eq!(first.len(), 64);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!readable_by_others(&path));
        let (again, created) = load_or_create_token_file(&path).expect("read");
        assert!(!created);
        assert_eq!(again, first);
    }
}
