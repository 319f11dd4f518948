//! The API server's limits and TLS, over real sockets: slow or idle
//! clients are cut off, connections are capped, bodies are bounded, a
//! command whose client has gone is marked stale before the controller
//! takes it, and renewed certificate files are served without a restart.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use canary_api::{ApiState, Board, CommandRequest, Limits, Listening, Token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

const TOKEN: &str = "test-token-0123456789";

fn limits() -> Limits {
    Limits {
        max_connections: 8,
        header_timeout: Duration::from_millis(300),
        max_body: 1024,
        ..Limits::default()
    }
}

async fn start(
    limits: Limits,
    tls: Option<Arc<canary_api::tls::ServerConfig>>,
) -> (Listening, mpsc::Receiver<CommandRequest>) {
    let (commands, receiver) = mpsc::channel(4);
    let state = ApiState {
        board: Arc::new(Board::default()),
        commands,
        token: Some(Token::new(TOKEN).expect("token")),
        readiness: canary_api::Readiness::Serving,
        limits,
    };
    let listening = canary_api::serve("127.0.0.1:0".parse().expect("addr"), state, tls)
        .await
        .expect("listens");
    (listening, receiver)
}

/// Reads until the server closes the connection; fails after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&seen).into_owned(),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the server kept the connection open for {limit:?}; got {:?}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
}

async fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    answer
}

#[tokio::test]
async fn half_sent_headers_and_idle_connections_are_cut_off() {
    let (api, _commands) = start(limits(), None).await;
    // Half a request, never finished.
    let mut slow = TcpStream::connect(api.addr).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("write");
    closed_within(&mut slow, Duration::from_secs(10)).await;
    // A finished request on a keep-alive connection, then silence.
    let mut idle = TcpStream::connect(api.addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let answer = closed_within(&mut idle, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Nothing connected at all.
    let mut silent = TcpStream::connect(api.addr).await.expect("connect");
    closed_within(&mut silent, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_is_free() {
    let (api, _commands) = start(
        Limits {
            max_connections: 2,
            header_timeout: Duration::from_secs(60),
            ..limits()
        },
        None,
    )
    .await;
    let first = TcpStream::connect(api.addr).await.expect("connect");
    let second = TcpStream::connect(api.addr).await.expect("connect");
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.open_connections() < 2 {
        assert!(
            Instant::now() < deadline,
            "the two connections were not served"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let addr = api.addr;
    let mut third = tokio::spawn(async move { get(addr, "/healthz").await });
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut third)
            .await
            .is_err(),
        "a third connection was served past the cap of 2"
    );
    assert_eq!(api.open_connections(), 2);
    drop(first);
    let answer = tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .expect("served once a connection closed")
        .expect("task");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(second);
}

#[tokio::test]
async fn bodies_are_bounded() {
    let (api, _commands) = start(limits(), None).await;
    let mut stream = TcpStream::connect(api.addr).await.expect("connect");
    let body = format!("{{\"token\": \"{}\"}}", "x".repeat(4096));
    let request = format!(
        "POST /session HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        api.addr,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let answer = closed_within(&mut stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn a_command_whose_client_gave_up_is_stale_before_it_is_taken() {
    let (api, mut commands) = start(limits(), None).await;
    let mut client = TcpStream::connect(api.addr).await.expect("connect");
    client
        .write_all(
            format!(
                "POST /resume HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {TOKEN}\r\n\r\n",
                api.addr
            )
            .as_bytes(),
        )
        .await
        .expect("write");
    // The controller is busy: the command waits in the queue while the
    // client gives up.
    let request = tokio::time::timeout(Duration::from_secs(10), commands.recv())
        .await
        .expect("handed over")
        .expect("a command");
    assert_eq!(request.command, canary_rollout::Command::Resume);
    assert_eq!(request.by.who, "cli");
    assert!(request.stale(Instant::now()).is_none());
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(why) = request.stale(Instant::now()) {
            assert!(why.contains("client has gone"), "{why}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the command still looks wanted after its client left"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn commands_wait_at_most_their_deadline_for_a_busy_controller() {
    let (api, _commands) = start(
        Limits {
            command_deadline: Duration::from_millis(200),
            answer_wait: Duration::from_millis(200),
            ..limits()
        },
        None,
    )
    .await;
    // Nobody takes commands: the queue (4) fills, the fifth is refused
    // once its deadline has passed, not queued for later.
    let mut answers = Vec::new();
    for _ in 0..5 {
        let addr = api.addr;
        answers.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            stream
                .write_all(
                    format!(
                        "POST /abort HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {TOKEN}\r\nconnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                )
                .await
                .expect("write");
            let mut answer = String::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer)).await;
            answer
        }));
    }
    let mut busy = 0;
    for answer in answers {
        let answer = answer.await.expect("task");
        if answer.starts_with("HTTP/1.1 503") && answer.contains("not carried out") {
            busy += 1;
        }
    }
    assert!(busy >= 1, "a command past its deadline was queued");
}

fn write_cert(dir: &Path, names: &[&str]) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .expect("params");
    let cert = params.self_signed(&key).expect("cert");
    // Written as a renewal tool does: next to it, then renamed over.
    std::fs::write(dir.join("cert.pem.new"), cert.pem()).expect("cert");
    std::fs::write(dir.join("key.pem.new"), key.serialize_pem()).expect("key");
    std::fs::rename(dir.join("key.pem.new"), dir.join("key.pem")).expect("rename");
    std::fs::rename(dir.join("cert.pem.new"), dir.join("cert.pem")).expect("rename");
    cert.der().to_vec()
}

async fn handshake(addr: SocketAddr, trusted: &[u8]) -> Result<String, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(trusted.to_vec()))
        .map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    tls.read_to_string(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    Ok(answer)
}

#[tokio::test]
async fn renewed_certificate_files_are_served_without_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let first = write_cert(dir.path(), &["localhost"]);
    let config = canary_api::tls::server_config(canary_api::tls::TlsFiles {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    })
    .expect("TLS");
    let (api, _commands) = start(limits(), Some(config)).await;
    let answer = handshake(api.addr, &first)
        .await
        .expect("first certificate");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let second = write_cert(dir.path(), &["localhost"]);
    let answer = handshake(api.addr, &second)
        .await
        .expect("the renewed certificate is served");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        handshake(api.addr, &first).await.is_err(),
        "the old certificate is no longer served"
    );

    // A broken renewal keeps the certificate in use.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").expect("write");
    assert!(handshake(api.addr, &second).await.is_ok());
}

#[tokio::test]
async fn the_cli_client_reaches_a_tls_api_that_it_is_told_to_trust() {
    let dir = tempfile::tempdir().expect("dir");
    write_cert(dir.path(), &["localhost", "127.0.0.1"]);
    let config = canary_api::tls::server_config(canary_api::tls::TlsFiles {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    })
    .expect("TLS");
    let (api, _commands) = start(limits(), Some(config)).await;
    let server = format!("https://localhost:{}", api.addr.port());
    let pem = std::fs::read(dir.path().join("cert.pem")).expect("cert");
    let client = canary_api::client::ApiClient::trusting(&server, Some(TOKEN.into()), Some(&pem))
        .expect("client");
    // Through TLS and the token: no rollout is loaded in this test.
    match client.status().await {
        Err(canary_api::client::ClientError::Unexpected { status: 404, .. }) => {}
        other => panic!("expected the API's 404, got {other:?}"),
    }
    let untrusting =
        canary_api::client::ApiClient::new(&server, Some(TOKEN.into())).expect("client");
    assert!(matches!(
        untrusting.status().await,
        Err(canary_api::client::ClientError::Unreachable { .. })
    ));
}
