//! Override headers force a version, unless switched off or missing their
//! secret; a client can never pick the canary with the routing header.

use canary_e2e::setup::{filter_config, served_by, Rig};
use canary_lab::envoy::Delivery;
use serde_json::json;

fn with_header(name: &'static str, value: &'static str) -> impl Fn(usize) -> Vec<(String, String)> {
    move |_| vec![(name.to_owned(), value.to_owned())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_force_each_version() {
    let rig = Rig::start(
        Delivery::Inline,
        &filter_config(50.0, json!({ "override": { "header": "x-canary" } })),
    )
    .await;
    for (value, version) in [
        ("always", "v2"),
        ("v2", "v2"),
        ("never", "v1"),
        ("v1", "v1"),
    ] {
        let replies = rig.send(200, with_header("x-canary", value)).await;
        assert_eq!(served_by(&replies, version), 200, "x-canary: {value}");
    }
    // An unknown value is ignored: the weight decides (both versions appear).
    let replies = rig.send(200, with_header("x-canary", "perhaps")).await;
    assert!(served_by(&replies, "v1") > 0 && served_by(&replies, "v2") > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_switched_off_have_no_effect() {
    let config = filter_config(0.0, json!({ "override": { "enabled": false } }));
    let rig = Rig::start(Delivery::Inline, &config).await;
    let replies = rig.send(200, with_header("x-canary", "always")).await;
    assert_eq!(served_by(&replies, "v1"), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_is_required_when_configured() {
    let config = filter_config(0.0, json!({ "override": { "secret": "open-sesame" } }));
    let rig = Rig::start(Delivery::Inline, &config).await;

    let without = rig.send(100, with_header("x-canary", "always")).await;
    assert_eq!(served_by(&without, "v1"), 100, "no secret");

    let wrong = rig
        .send(100, |_| {
            vec![
                ("x-canary".into(), "always".into()),
                ("x-canary-secret".into(), "open-sesam".into()),
            ]
        })
        .await;
    assert_eq!(served_by(&wrong, "v1"), 100, "wrong secret");

    let right = rig
        .send(100, |_| {
            vec![
                ("x-canary".into(), "always".into()),
                ("x-canary-secret".into(), "open-sesame".into()),
            ]
        })
        .await;
    assert_eq!(served_by(&right, "v2"), 100, "right secret");

    // The secret never reaches the upstream.
    let echo = rig
        .get(
            "/echo",
            &[("x-canary", "always"), ("x-canary-secret", "open-sesame")],
        )
        .await
        .unwrap();
    assert_eq!(echo.served_by.as_deref(), Some("v2"));
    assert!(
        !echo.body.contains("open-sesame"),
        "secret forwarded: {}",
        echo.body
    );
    assert!(echo.body.contains("x-canary-version: v2"), "{}", echo.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_never_reaches_the_upstream_even_with_the_override_off() {
    let config = filter_config(
        0.0,
        json!({ "override": { "enabled": false, "secret": "open-sesame" } }),
    );
    let rig = Rig::start(Delivery::Inline, &config).await;
    let echo = rig
        .get(
            "/echo",
            &[("x-canary", "always"), ("x-canary-secret", "open-sesame")],
        )
        .await
        .unwrap();
    assert_eq!(echo.served_by.as_deref(), Some("v1"), "the override is off");
    assert!(
        !echo.body.contains("open-sesame"),
        "secret forwarded: {}",
        echo.body
    );
    // Duplicate secret headers: every copy is removed.
    let raw = b"GET /echo HTTP/1.1\r\nhost: app.example.com\r\nx-canary-secret: open-sesame\r\nx-canary-secret: other\r\nconnection: close\r\n\r\n";
    let answer = rig.raw(raw).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(!answer.contains("x-canary-secret"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_duplicate_secret_headers_the_first_decides() {
    let config = filter_config(0.0, json!({ "override": { "secret": "open-sesame" } }));
    let rig = Rig::start(Delivery::Inline, &config).await;
    let first_right = b"GET / HTTP/1.1\r\nhost: app.example.com\r\nx-canary: always\r\nx-canary-secret: open-sesame\r\nx-canary-secret: wrong\r\nconnection: close\r\n\r\n";
    let answer = rig.raw(first_right).await;
    assert!(answer.contains("x-served-by: v2"), "{answer}");
    let first_wrong = b"GET / HTTP/1.1\r\nhost: app.example.com\r\nx-canary: always\r\nx-canary-secret: wrong\r\nx-canary-secret: open-sesame\r\nconnection: close\r\n\r\n";
    let answer = rig.raw(first_wrong).await;
    assert!(answer.contains("x-served-by: v1"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routing_header_from_a_client_never_reaches_canary() {
    for delivery in [Delivery::Inline, Delivery::Ecds] {
        let rig = Rig::start(delivery, &filter_config(0.0, json!({}))).await;
        let replies = rig.send(300, with_header("x-canary-version", "v2")).await;
        assert_eq!(served_by(&replies, "v1"), 300, "{delivery:?}");
        assert_eq!(rig.canary.served(), 0);
        // What reached stable carries the filter's mark, not the client's.
        let echo = rig
            .get("/echo", &[("x-canary-version", "v2")])
            .await
            .unwrap();
        assert!(echo.body.contains("x-canary-version: v1"), "{}", echo.body);
        assert!(!echo.body.contains("x-canary-version: v2"), "{}", echo.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_headers_do_not_break_routing() {
    let config = filter_config(
        0.0,
        json!({ "override": {}, "sticky": { "cookie": "session" } }),
    );
    let rig = Rig::start(Delivery::Inline, &config).await;
    let odd: [(&str, &str); 5] = [
        ("x-canary", "\u{7f}always"),
        ("x-canary", "ALWAYS"),
        ("cookie", ";;;=;session"),
        ("cookie", "session=\"\""),
        ("x-canary", "v2 "),
    ];
    for (name, value) in odd {
        let reply = rig.get("/", &[(name, value)]).await;
        let reply = match reply {
            Ok(reply) => reply,
            // The client library refuses to send some bytes; that is fine.
            Err(_) => continue,
        };
        assert_eq!(reply.status, 200, "{name}: {value:?}");
    }
    // Bytes that are not UTF-8, written on the wire by hand.
    let raw = b"GET / HTTP/1.1\r\nhost: app.example.com\r\nx-canary: \xe9\xff\r\ncookie: session=\xff\xfe\r\nconnection: close\r\n\r\n";
    let answer = rig.raw(raw).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The filter is still healthy: overrides still work afterwards.
    let reply = rig.get("/", &[("x-canary", "always")]).await.unwrap();
    assert_eq!(reply.served_by.as_deref(), Some("v2"));
}
