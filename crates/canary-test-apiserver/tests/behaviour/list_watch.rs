//! List and watch: selectors, pages, replay from a resourceVersion,
//! bookmarks, 410 Gone, and kube-runtime's watcher surviving both a
//! forgotten revision and a dropped connection.
//! https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes

use std::sync::{Arc, Mutex};
use std::time::Duration;

use canary_test_apiserver::{Identity, Settings, TestApiServer};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use serde_json::json;

use crate::support::{
    create, eventually, revision_of, rollout, rollouts, server, server_with, status_of,
};

async fn pods(server: &TestApiServer) -> Api<Pod> {
    let pods: Api<Pod> = Api::namespaced(server.admin_client().unwrap(), "shop");
    for (name, version) in [
        ("web-1", "stable"),
        ("web-2", "canary"),
        ("web-3", "canary"),
        ("db-1", "stable"),
    ] {
        let app = name.split('-').next().unwrap();
        let pod = json!({"metadata": {"name": name, "labels": {"app": app, "version": version}},
                         "spec": {"containers": [{"name": "app", "image": "x"}]}});
        create(&pods, pod).await;
    }
    pods
}

fn names(pods: Vec<Pod>) -> Vec<String> {
    pods.into_iter().filter_map(|p| p.metadata.name).collect()
}

// https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#list-and-watch-filtering
// and https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/
#[tokio::test]
async fn lists_select_by_labels_and_by_name() {
    let server = server().await;
    let pods = pods(&server).await;
    let canary = pods
        .list(&ListParams::default().labels("app=web,version=canary"))
        .await
        .unwrap();
    assert_eq!(names(canary.items), ["web-2", "web-3"]);
    let listed_at: u64 = canary.metadata.resource_version.unwrap().parse().unwrap();
    assert_eq!(listed_at, server.revision());
    let not_stable = pods
        .list(&ListParams::default().labels("version notin (stable)"))
        .await
        .unwrap();
    assert_eq!(names(not_stable.items), ["web-2", "web-3"]);
    let one = pods
        .list(&ListParams::default().fields("metadata.name=web-3"))
        .await
        .unwrap();
    assert_eq!(names(one.items), ["web-3"]);
    let status = status_of(
        pods.list(&ListParams::default().fields("status.phase=Running"))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
}

// https://kubernetes.io/docs/reference/using-api/api-concepts/#retrieving-large-results-sets-in-chunks
#[tokio::test]
async fn a_limited_list_continues_where_the_last_page_ended() {
    let server = server().await;
    let secrets: Api<Secret> = Api::namespaced(server.admin_client().unwrap(), "shop");
    for index in 0..5 {
        let secret = json!({"metadata": {"name": format!("s{index}")}});
        create(&secrets, secret).await;
    }
    let mut seen = Vec::new();
    let mut params = ListParams::default().limit(2);
    loop {
        let page = secrets.list(&params).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().filter_map(|s| s.metadata.name));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(seen, ["s0", "s1", "s2", "s3", "s4"]);
}

/// A watch's event stream.
async fn watch<K>(
    api: &Api<K>,
    params: &WatchParams,
    from: &str,
) -> futures::stream::BoxStream<'static, Result<WatchEvent<K>, kube::Error>>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    api.watch(params, from)
        .await
        .expect("the watch starts")
        .boxed()
}

async fn next_event<S>(stream: &mut S) -> WatchEvent<DynamicObject>
where
    S: futures::Stream<Item = Result<WatchEvent<DynamicObject>, kube::Error>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .expect("an event within 10 s")
        .expect("no stream error")
        .expect("the stream goes on")
}

// "Watches from a resourceVersion: the API server sends every change
// after it, in order."
#[tokio::test]
async fn a_watch_replays_what_followed_its_resource_version() {
    let server = server().await;
    let rollouts = rollouts(&server.admin_client().unwrap(), "shop");
    let created = create(&rollouts, rollout("web")).await;
    let from = created.metadata.resource_version.clone().unwrap();
    rollouts
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"routes": ["api"]}})),
        )
        .await
        .unwrap();
    rollouts
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();

    let mut stream = watch(&rollouts, &WatchParams::default(), &from).await;
    let WatchEvent::Modified(modified) = next_event(&mut stream).await else {
        panic!("MODIFIED first")
    };
    assert_eq!(modified.data["spec"]["routes"], json!(["api"]));
    let WatchEvent::Deleted(deleted) = next_event(&mut stream).await else {
        panic!("then DELETED")
    };
    assert!(revision_of(&deleted) > revision_of(&modified));
    assert!(revision_of(&modified) > revision_of(&created));
}

// https://kubernetes.io/docs/reference/using-api/api-concepts/#410-gone-responses:
// a watch from a revision the server no longer keeps gets an ERROR event
// with a 410 Expired Status.
#[tokio::test]
async fn a_watch_from_a_forgotten_revision_gets_410_gone() {
    let server = server_with(Settings {
        history_limit: 2,
        ..Settings::default()
    })
    .await;
    let rollouts = rollouts(&server.admin_client().unwrap(), "shop");
    let created = create(&rollouts, rollout("web")).await;
    for step in 1..=3 {
        let patch = json!({"metadata": {"annotations": {"step": step.to_string()}}});
        rollouts
            .patch("web", &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
    }
    let from = created.metadata.resource_version.unwrap();
    let mut stream = watch(&rollouts, &WatchParams::default(), &from).await;
    let WatchEvent::Error(status) = next_event(&mut stream).await else {
        panic!("an ERROR event")
    };
    assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
    assert!(
        status.message.starts_with("too old resource version"),
        "{}",
        status.message
    );
}

// https://kubernetes.io/docs/reference/using-api/api-concepts/#watch-bookmarks
#[tokio::test]
async fn bookmarks_carry_the_latest_revision() {
    let settings = Settings {
        bookmark_interval: Duration::from_millis(50),
        ..Settings::default()
    };
    let server = server_with(settings).await;
    let rollouts = rollouts(&server.admin_client().unwrap(), "shop");
    let created = create(&rollouts, rollout("web")).await;
    let from = created.metadata.resource_version.unwrap();
    let secrets: Api<Secret> = Api::namespaced(server.admin_client().unwrap(), "shop");
    create(&secrets, json!({"metadata": {"name": "other-kind"}})).await;
    let mut stream = watch(&rollouts, &WatchParams::default(), &from).await;
    let WatchEvent::Bookmark(bookmark) = next_event(&mut stream).await else {
        panic!("a BOOKMARK")
    };
    assert_eq!(
        bookmark.metadata.resource_version,
        server.revision().to_string()
    );
}

// https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#list-and-watch-filtering:
// an object leaving a selected set is seen as a deletion by the watch.
#[tokio::test]
async fn a_selected_watch_sees_objects_leave_and_enter_the_selection() {
    let server = server().await;
    let pods = pods(&server).await;
    let from = server.revision().to_string();
    let mut stream = watch(
        &pods,
        &WatchParams::default().labels("version=canary"),
        &from,
    )
    .await;
    let relabel =
        |version: &str| Patch::Merge(json!({"metadata": {"labels": {"version": version}}}));
    pods.patch("web-2", &PatchParams::default(), &relabel("stable"))
        .await
        .unwrap();
    pods.patch("db-1", &PatchParams::default(), &relabel("canary"))
        .await
        .unwrap();
    let next = |event: Result<Option<WatchEvent<Pod>>, kube::Error>| match event.unwrap().unwrap() {
        WatchEvent::Added(pod) => format!("ADDED {}", pod.metadata.name.unwrap()),
        WatchEvent::Deleted(pod) => format!("DELETED {}", pod.metadata.name.unwrap()),
        other => format!("{other:?}"),
    };
    assert_eq!(next(stream.try_next().await), "DELETED web-2");
    assert_eq!(next(stream.try_next().await), "ADDED db-1");
}

/// Names the watcher reported, in order: `init`, `apply <name>`,
/// `done`, `error <code>`.
fn record_watcher(api: Api<DynamicObject>) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(item) = stream.next().await {
            let entry = match item {
                Ok(Event::Init) => "init".to_owned(),
                Ok(Event::InitApply(o) | Event::Apply(o)) => {
                    format!("apply {}", o.metadata.name.unwrap_or_default())
                }
                Ok(Event::InitDone) => "done".to_owned(),
                Ok(Event::Delete(o)) => format!("delete {}", o.metadata.name.unwrap_or_default()),
                Err(watcher::Error::WatchError(status)) => format!("error {}", status.code),
                Err(error) => format!("error {error}"),
            };
            log.lock().unwrap().push(entry);
        }
    });
    seen
}

fn contains(seen: &Arc<Mutex<Vec<String>>>, entry: &str) -> bool {
    seen.lock().unwrap().iter().any(|e| e == entry)
}

fn count(seen: &Arc<Mutex<Vec<String>>>, entry: &str) -> usize {
    seen.lock().unwrap().iter().filter(|e| *e == entry).count()
}

fn requests(server: &TestApiServer, verb: &str) -> usize {
    server
        .requests_by(&Identity::admin())
        .iter()
        .filter(|r| r.attributes.verb == verb && r.attributes.resource == "canaryrollouts")
        .count()
}

// https://kubernetes.io/docs/reference/using-api/api-concepts/#410-gone-responses:
// "clients must handle the case by recognizing the status code 410 Gone,
// clearing their local cache, performing a new get or list operation".
// kube-runtime's watcher does, and goes on seeing changes.
#[tokio::test]
async fn kube_runtime_watcher_lists_again_after_410_gone() {
    let server = server().await;
    let client = server.admin_client().unwrap();
    let rollouts = rollouts(&client, "shop");
    create(&rollouts, rollout("first")).await;
    let seen = record_watcher(rollouts.clone());
    eventually("the watcher listed and watches", || async {
        contains(&seen, "done") && server.open_watches() == 1
    })
    .await;
    assert_eq!(requests(&server, "list"), 1);

    server.expire_watch_history();
    eventually("the watcher listed again", || async {
        count(&seen, "done") == 2 && server.open_watches() == 1
    })
    .await;
    assert!(contains(&seen, "error 410"), "{:?}", seen.lock().unwrap());
    assert_eq!(requests(&server, "list"), 2);

    create(&rollouts, rollout("second")).await;
    eventually("the watcher saw the new rollout", || async {
        contains(&seen, "apply second")
    })
    .await;
}

// A watch connection that breaks is resumed from the last revision seen,
// without a new list.
#[tokio::test]
async fn kube_runtime_watcher_resumes_after_a_dropped_connection() {
    let server = server().await;
    let client = server.admin_client().unwrap();
    let rollouts = rollouts(&client, "shop");
    let seen = record_watcher(rollouts.clone());
    eventually("the watcher watches", || async {
        contains(&seen, "done") && server.open_watches() == 1
    })
    .await;
    let watches_before = requests(&server, "watch");

    server.drop_watch_connections();
    create(&rollouts, rollout("during")).await;
    eventually(
        "the watcher saw the rollout made while it was away",
        || async { contains(&seen, "apply during") },
    )
    .await;
    assert!(requests(&server, "watch") > watches_before);
    assert_eq!(requests(&server, "list"), 1, "resumed, not listed again");
    let resumed = server
        .requests_by(&Identity::admin())
        .into_iter()
        .rfind(|r| r.attributes.verb == "watch")
        .unwrap();
    assert!(
        resumed.query.contains("resourceVersion="),
        "{}",
        resumed.query
    );
}

// https://kubernetes.io/docs/reference/using-api/api-concepts/#streaming-lists:
// with sendInitialEvents the existing objects come first, then a bookmark
// annotated k8s.io/initial-events-end.
#[tokio::test]
async fn initial_events_end_with_an_annotated_bookmark() {
    let server = server().await;
    let rollouts = rollouts(&server.admin_client().unwrap(), "shop");
    create(&rollouts, rollout("web")).await;
    let params = WatchParams {
        send_initial_events: true,
        ..WatchParams::default()
    };
    let mut stream = watch(&rollouts, &params, "").await;
    let WatchEvent::Added(added) = next_event(&mut stream).await else {
        panic!("ADDED first")
    };
    assert_eq!(added.metadata.name.as_deref(), Some("web"));
    let WatchEvent::Bookmark(bookmark) = next_event(&mut stream).await else {
        panic!("then a BOOKMARK")
    };
    assert_eq!(
        bookmark
            .metadata
            .annotations
            .get("k8s.io/initial-events-end")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        bookmark.metadata.resource_version,
        server.revision().to_string()
    );
}

// timeoutSeconds: "timeout for the list/watch call"; the stream ends
// cleanly and the client watches again.
#[tokio::test]
async fn a_watch_ends_after_its_timeout() {
    let server = server().await;
    let rollouts = rollouts(&server.admin_client().unwrap(), "shop");
    let from = server.revision().to_string();
    let mut stream = watch(&rollouts, &WatchParams::default().timeout(1), &from).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .expect("ends within 10 s");
    assert!(matches!(ended, Ok(None)), "{ended:?}");
    eventually("the server closed the watch", || async {
        server.open_watches() == 0
    })
    .await;
}
