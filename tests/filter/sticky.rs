//! Sticky keys: the same key gets the same version; raising the weight only
//! moves keys from stable to canary.

use std::collections::BTreeMap;
use std::time::Duration;

use canary_e2e::setup::{filter_config, Rig};
use canary_e2e::split::assert_share;
use canary_lab::envoy::{Delivery, PushOutcome};
use serde_json::json;

fn user(i: usize) -> String {
    format!("user-{i}")
}

/// Version per key, asserting each key got one version only.
fn versions_by_key(rig_replies: &[(String, Option<String>)]) -> BTreeMap<String, String> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (key, version) in rig_replies {
        let version = version.clone().expect("a backend answered");
        if let Some(previous) = seen.insert(key.clone(), version.clone()) {
            assert_eq!(previous, version, "key {key} switched versions");
        }
    }
    seen
}

async fn assign(
    rig: &Rig,
    keys: usize,
    per_key: usize,
    header: &'static str,
) -> BTreeMap<String, String> {
    let replies = rig
        .send(keys * per_key, |i| {
            vec![(header.to_owned(), user(i % keys))]
        })
        .await;
    let pairs: Vec<(String, Option<String>)> = replies
        .into_iter()
        .enumerate()
        .map(|(i, reply)| (user(i % keys), reply.served_by))
        .collect();
    versions_by_key(&pairs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_gets_the_same_version() {
    let rig = Rig::start(
        Delivery::Inline,
        &filter_config(50.0, json!({ "sticky": { "header": "x-user-id" } })),
    )
    .await;
    // 200 requests for one key.
    let replies = rig
        .send(200, |_| vec![("x-user-id".into(), "alice".into())])
        .await;
    let first = replies[0].served_by.clone();
    assert!(
        replies.iter().all(|r| r.served_by == first),
        "alice moved between versions"
    );
    // And 40 keys, 10 requests each: every key stays put, both versions used.
    let by_key = assign(&rig, 40, 10, "x-user-id").await;
    let canary = by_key.values().filter(|v| *v == "v2").count();
    assert!(
        canary > 0 && canary < 40,
        "{canary} of 40 keys on canary at 50%"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raising_the_weight_keeps_canary_keys_on_canary() {
    let sticky = json!({ "sticky": { "header": "x-user-id" } });
    let mut rig = Rig::start(Delivery::Ecds, &filter_config(10.0, sticky.clone())).await;
    let keys = 1_000;
    let at_10 = assign(&rig, keys, 1, "x-user-id").await;
    let canary_at_10: Vec<&String> = at_10
        .iter()
        .filter(|(_, v)| *v == "v2")
        .map(|(k, _)| k)
        .collect();
    assert_share(canary_at_10.len(), keys, 10.0);

    let outcome = rig
        .envoy
        .push_and_wait(
            &filter_config(25.0, sticky).to_string(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(outcome, PushOutcome::Applied);

    let at_25 = assign(&rig, keys, 1, "x-user-id").await;
    for key in &canary_at_10 {
        assert_eq!(
            at_25[*key], "v2",
            "{key} left the canary when the weight rose"
        );
    }
    let canary_at_25 = at_25.values().filter(|v| *v == "v2").count();
    assert_share(canary_at_25, keys, 25.0);
    println!(
        "sticky: {} keys on canary at 10%, {} at 25%",
        canary_at_10.len(),
        canary_at_25
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_work_as_keys() {
    let rig = Rig::start(
        Delivery::Inline,
        &filter_config(50.0, json!({ "sticky": { "cookie": "session" } })),
    )
    .await;
    let replies = rig
        .send(400, |i| {
            vec![("cookie".into(), format!("theme=dark; session=s{}", i % 20))]
        })
        .await;
    let pairs: Vec<(String, Option<String>)> = replies
        .into_iter()
        .enumerate()
        .map(|(i, reply)| (format!("s{}", i % 20), reply.served_by))
        .collect();
    let by_key = versions_by_key(&pairs);
    assert_eq!(by_key.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_that_are_not_utf8_are_hashed_as_bytes_and_stay_sticky() {
    let rig = Rig::start(
        Delivery::Inline,
        &filter_config(50.0, json!({ "sticky": { "header": "x-user-id" } })),
    )
    .await;
    for key in [&b"\xff\xfe-1"[..], b"caf\xe9", b"\x80"] {
        let mut request = b"GET / HTTP/1.1\r\nhost: app.example.com\r\nx-user-id: ".to_vec();
        request.extend_from_slice(key);
        request.extend_from_slice(b"\r\nconnection: close\r\n\r\n");
        let mut seen = BTreeMap::new();
        for _ in 0..30 {
            let answer = rig.raw(&request).await;
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            let version = if answer.contains("x-served-by: v2") {
                "v2"
            } else {
                "v1"
            };
            *seen.entry(version).or_insert(0) += 1;
        }
        assert_eq!(
            seen.len(),
            1,
            "key {key:?} moved between versions: {seen:?}"
        );
        // Hashed as the raw bytes: the version the shared hash gives for
        // them (the salt defaults to the entry's name).
        let half = canary_config::weight::Weight::from_basis_points(5_000);
        let bucket = canary_config::sticky::bucket_of(b"app", key);
        let expected = if half.is_some_and(|w| w.admits(bucket)) {
            "v2"
        } else {
            "v1"
        };
        assert_eq!(
            seen.keys().next().copied(),
            Some(expected),
            "key {key:?} is not hashed as its bytes"
        );
    }
}
