//! The HTTP API's options, shared by `canary run` and `canary operator`:
//! one address rule, one token rule, one TLS rule (docs/api-auth.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use canary_api::auth::{self, TokenSources};
use canary_api::tls::{ServerConfig, TlsFiles};
use canary_api::Token;
use tracing::{info, warn};

/// Where the API listens and how it is protected.
#[derive(Debug, clap::Args)]
pub struct ApiOptions {
    /// Address of the HTTP API (reports, commands, `/metrics`,
    /// `/healthz`, `/readyz`).
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// The API's token (visible to every local user in /proc: prefer
    /// --token-file or CANARY_TOKEN). See docs/api-auth.md.
    #[arg(long)]
    pub token: Option<String>,
    /// File holding the API's token; generated (mode 0600) when it does
    /// not exist [default: .canary/api-token].
    #[arg(long, env = "CANARY_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Serve the API over TLS with this PEM certificate chain (read again
    /// when it changes); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Allow a --listen address other machines can reach without TLS.
    #[arg(long)]
    pub insecure: bool,
}

impl ApiOptions {
    /// The API's token and TLS configuration; refuses an address other
    /// machines can reach without TLS unless `--insecure`.
    pub fn security(&self) -> Result<(Token, Option<Arc<ServerConfig>>), String> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(
                canary_api::tls::server_config(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                })
                .map_err(|err| format!("--tls-cert/--tls-key: {err}"))?,
            ),
            _ => None,
        };
        if !self.listen.ip().is_loopback() && tls.is_none() {
            if !self.insecure {
                return Err(format!(
                    "--listen {} can be reached from other machines: serve the API over TLS (--tls-cert and --tls-key), or pass --insecure to send the token in clear text",
                    self.listen
                ));
            }
            warn!(
                "the API on {} is reachable from other machines without TLS (--insecure)",
                self.listen
            );
        }
        if self.token.is_some() {
            warn!("{}", auth::TOKEN_FLAG_WARNING);
        }
        let sources = TokenSources::from_env(self.token.clone(), self.token_file.clone());
        let (secret, place) = sources.for_server().map_err(|err| err.to_string())?;
        let token = Token::new(&secret).map_err(|err| format!("the API token: {err}"))?;
        info!("API token {place}");
        let path = sources.file_path();
        if sources.flag.is_none() && sources.env.is_none() && auth::readable_by_others(&path) {
            warn!(
                "the token file {} can be read by other users: chmod 600 it",
                path.display()
            );
        }
        Ok((token, tls))
    }
}
