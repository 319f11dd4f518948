//! Where a metric's measurements come from. The engine never calls a
//! provider: it hands these typed settings to the caller, who measures and
//! feeds the result back.
//!
//! `prometheus` and `web` are Argo Rollouts' own; `envoy` (the canary
//! filter's stats), `judge` (canary against stable, anytime-valid, see
//! `docs/judge.md`) and `kubernetes` (pod readiness and CPU) are canary's.
//! canary's own providers are also read in the form Argo's CRD stores
//! them, as a metric plugin: `plugin: {canary.dev/judge: {...}}`.

use std::time::Duration;

use crate::fields::{Object, Reader, Unsupported};
use crate::yaml::Node;

/// A metric's provider.
#[derive(Debug, Clone, PartialEq)]
pub enum Provider {
    /// A PromQL query; `result` is a number or a list of numbers.
    Prometheus(PrometheusQuery),
    /// An HTTP call; `result` is what `jsonPath` selects.
    Web(WebQuery),
    /// The canary filter's stats from Envoy's admin endpoint.
    Envoy(EnvoyQuery),
    /// Pods of the version, from the Kubernetes API.
    Kubernetes(KubernetesQuery),
    /// The judge: canary against stable from the filter's stats, over
    /// every interval the split was in force.
    Judge(JudgeQuery),
}

impl Provider {
    /// The provider's name as written in templates.
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Prometheus(_) => "prometheus",
            Provider::Web(_) => "web",
            Provider::Envoy(_) => "envoy",
            Provider::Kubernetes(_) => "kubernetes",
            Provider::Judge(_) => "judge",
        }
    }

    /// Whether the provider reports how many samples a value stands on,
    /// which `minSamples` needs.
    pub fn reports_samples(&self) -> bool {
        matches!(self, Provider::Envoy(_) | Provider::Kubernetes(_))
    }
}

/// A header sent with a query. Its value often holds a credential, so
/// `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name.
    pub key: String,
    /// Header value.
    pub value: String,
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Header")
            .field("key", &self.key)
            .field("value", &"REDACTED")
            .finish()
    }
}

/// `provider.prometheus`, as Argo Rollouts defines it.
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusQuery {
    /// Server address (`http://prometheus:9090`); the controller's default
    /// when absent.
    pub address: Option<String>,
    /// The PromQL query.
    pub query: String,
    /// Query timeout (Argo: `timeout`, in seconds).
    pub timeout: Option<Duration>,
    /// Skip TLS verification.
    pub insecure: bool,
    /// Extra request headers.
    pub headers: Vec<Header>,
}

/// HTTP method of a web metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebMethod {
    /// GET (the default).
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
}

/// `provider.web`, as Argo Rollouts defines it.
#[derive(Debug, Clone, PartialEq)]
pub struct WebQuery {
    /// Request method.
    pub method: WebMethod,
    /// URL to call.
    pub url: String,
    /// Request headers.
    pub headers: Vec<Header>,
    /// Request body as text.
    pub body: Option<String>,
    /// Request body as JSON (`jsonBody`).
    pub json_body: Option<serde_json::Value>,
    /// Request timeout (`timeoutSeconds`, default 10).
    pub timeout: Duration,
    /// Kubernetes JSONPath selecting `result` from the response
    /// (`{$.data.ok}`); the whole document when absent.
    pub json_path: Option<String>,
    /// Skip TLS verification.
    pub insecure: bool,
}

/// Which version's stats a measurement reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSelector {
    /// The canary only (the default): stable's traffic never dilutes it.
    Canary,
    /// The stable version only.
    Stable,
    /// Both: `result` is `{canary: …, stable: …}`, so a condition can
    /// compare them (`result.canary >= result.stable - 0.01`).
    Both,
}

/// What an Envoy metric measures over its window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EnvoyQuantity {
    /// Share of completed requests that did not fail (0–1).
    SuccessRate,
    /// Share of completed requests that failed: 5xx and resets (0–1).
    ErrorRate,
    /// Requests per second.
    RequestRate,
    /// A latency quantile, in milliseconds.
    Latency {
        /// The quantile, between 0 and 1 (`0.99`).
        quantile: f64,
    },
    /// Healthy hosts ÷ hosts of the query's `cluster`, from Envoy's active
    /// health checks (`membership_healthy / membership_total`): pod
    /// readiness outside Kubernetes. Samples = hosts.
    ReadyRatio,
}

/// `provider.envoy`: the canary filter's stats for one route entry, or
/// the health of one Envoy cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvoyQuery {
    /// The filter's route entry (`routes[].name`); empty for `ready-ratio`.
    pub route: String,
    /// The Envoy cluster whose hosts `ready-ratio` counts.
    pub cluster: Option<String>,
    /// Which version.
    pub version: VersionSelector,
    /// What to measure.
    pub quantity: EnvoyQuantity,
    /// The window the value covers (the difference between two scrapes);
    /// the time since the previous measurement when absent.
    pub window: Option<Duration>,
}

/// `provider.judge` (or `provider.plugin.canary.dev/judge`): the judge's
/// settings for one route entry.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeQuery {
    /// The filter's route entry (`routes[].name`).
    pub route: String,
    /// Whether a measurement passes only once the judge says Successful
    /// (a step's gate); otherwise every look that shows no failure passes
    /// (a guard).
    pub gate: bool,
    /// α, the success risk and the tolerances, checked.
    pub settings: canary_judge::JudgeSettings,
    /// Latency bounds below this are not judged (`latency.ignoreBelow`).
    pub latency_floor: Duration,
}

/// Latency bounds below this are not judged by default: the filter's
/// routing of canary requests (the route is matched again) adds a fraction
/// of a millisecond that the judge would otherwise, in time, show.
pub const DEFAULT_LATENCY_FLOOR: Duration = Duration::from_millis(5);

/// The condition a judge metric's measurements are held to: the judge
/// decides, a measurement fails exactly when it says Failed.
pub const JUDGE_FAILURE_CONDITION: &str = "result.verdict == \"Failed\"";

/// What a Kubernetes metric measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubernetesQuantity {
    /// Ready pods ÷ pods (0–1); samples = pods.
    ReadyRatio,
    /// CPU used ÷ CPU requested, averaged over pods; samples = pods.
    CpuRatio,
}

/// `provider.kubernetes`: pods matching a label selector.
#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesQuery {
    /// Namespace; the controller's own when absent.
    pub namespace: Option<String>,
    /// Label selector (`app=web,version=v2`).
    pub selector: String,
    /// What to measure.
    pub quantity: KubernetesQuantity,
}

const UNSUPPORTED_PROVIDERS: &[Unsupported] = &[
    (
        "job",
        "canary runs no Kubernetes Jobs; use `web` to call a test endpoint",
    ),
    ("datadog", SUPPORTED),
    ("newRelic", SUPPORTED),
    ("wavefront", SUPPORTED),
    ("kayenta", SUPPORTED),
    ("cloudWatch", SUPPORTED),
    ("graphite", SUPPORTED),
    ("influxdb", SUPPORTED),
    ("skywalking", SUPPORTED),
];

const SUPPORTED: &str =
    "canary supports the prometheus, web, envoy, judge and kubernetes providers";

/// The metric plugins canary reads: its own providers in the form Argo's
/// CRD stores them.
const PLUGINS: [&str; 3] = [
    "canary.dev/judge",
    "canary.dev/envoy",
    "canary.dev/kubernetes",
];

const AUTHENTICATION: Unsupported = (
    "authentication",
    "sigv4 and OAuth2 are not implemented; pass a token with `headers`",
);

/// Reads `provider` of a metric: exactly one provider.
pub fn read_provider(r: &mut Reader, path: String, node: &Node) -> Option<Provider> {
    let known = [
        "prometheus",
        "web",
        "envoy",
        "kubernetes",
        "judge",
        "plugin",
    ];
    let object = Object::open(r, path, node, &known, UNSUPPORTED_PROVIDERS)?;
    let present: Vec<&str> = known.into_iter().filter(|k| object.has(k)).collect();
    match present.as_slice() {
        [] => {
            let supported = known.join(", ");
            if object.node().entries().is_some_and(<[_]>::is_empty) {
                r.fail(
                    object.line(),
                    object.path.clone(),
                    format!("no provider; set one of: {supported}"),
                );
            }
            None
        }
        [one] => {
            let node = object.require(r, one)?;
            let at = object.at(one);
            match *one {
                "prometheus" => read_prometheus(r, at, node).map(Provider::Prometheus),
                "web" => read_web(r, at, node).map(Provider::Web),
                "envoy" => read_envoy(r, at, node).map(Provider::Envoy),
                "judge" => read_judge(r, at, node).map(Provider::Judge),
                "plugin" => read_plugin(r, at, node),
                _ => read_kubernetes(r, at, node).map(Provider::Kubernetes),
            }
        }
        many => {
            let reason = format!(
                "more than one provider ({}); set exactly one",
                many.join(", ")
            );
            r.fail(object.line(), object.path.clone(), reason);
            None
        }
    }
}

fn read_headers(r: &mut Reader, object: &Object<'_>) -> Vec<Header> {
    let Some(items) = object.list(r, "headers") else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("{}[{i}]", object.at("headers"));
        let Some(header) = Object::open(r, path, item, &["key", "value"], &[]) else {
            continue;
        };
        let key = header.required_string(r, "key");
        let value = header.string(r, "value").unwrap_or_default();
        if let Some(key) = key {
            out.push(Header { key, value });
        }
    }
    out
}

fn read_prometheus(r: &mut Reader, path: String, node: &Node) -> Option<PrometheusQuery> {
    let known = ["address", "query", "timeout", "insecure", "headers"];
    let object = Object::open(r, path, node, &known, &[AUTHENTICATION])?;
    let address = object.string(r, "address");
    let query = object.required_string(r, "query");
    let timeout = object
        .int(r, "timeout", 1)
        .map(|s| Duration::from_secs(s.unsigned_abs()));
    let insecure = object.bool(r, "insecure").unwrap_or(false);
    let headers = read_headers(r, &object);
    Some(PrometheusQuery {
        address,
        query: query?,
        timeout,
        insecure,
        headers,
    })
}

fn read_web(r: &mut Reader, path: String, node: &Node) -> Option<WebQuery> {
    let known = [
        "method",
        "url",
        "headers",
        "body",
        "jsonBody",
        "timeoutSeconds",
        "jsonPath",
        "insecure",
    ];
    let object = Object::open(r, path, node, &known, &[AUTHENTICATION])?;
    let method = match object.string(r, "method").as_deref() {
        None | Some("GET") => Some(WebMethod::Get),
        Some("POST") => Some(WebMethod::Post),
        Some("PUT") => Some(WebMethod::Put),
        Some(other) => {
            object.fail(r, "method", format!("{other:?} is not GET, POST or PUT"));
            None
        }
    };
    let url = object.required_string(r, "url");
    let headers = read_headers(r, &object);
    let body = object.string(r, "body");
    let json_body = object.get("jsonBody").map(to_json);
    if body.is_some() && json_body.is_some() {
        object.fail(r, "jsonBody", "set either `body` or `jsonBody`, not both");
    }
    let timeout = object
        .int(r, "timeoutSeconds", 1)
        .map_or(10, i64::unsigned_abs);
    let json_path = object.string(r, "jsonPath");
    let insecure = object.bool(r, "insecure").unwrap_or(false);
    Some(WebQuery {
        method: method?,
        url: url?,
        headers,
        body,
        json_body,
        timeout: Duration::from_secs(timeout),
        json_path,
        insecure,
    })
}

fn read_envoy(r: &mut Reader, path: String, node: &Node) -> Option<EnvoyQuery> {
    let known = [
        "route", "cluster", "version", "quantity", "quantile", "window",
    ];
    let object = Object::open(r, path, node, &known, &[])?;
    let ready_ratio = object.string(r, "quantity").as_deref() == Some("ready-ratio");
    let (route, cluster) = if ready_ratio {
        if object.has("version") {
            object.fail(
                r,
                "version",
                "ready-ratio reads a cluster; name it with `cluster`, not `version`",
            );
        }
        (
            Some(object.string(r, "route").unwrap_or_default()),
            object.required_string(r, "cluster"),
        )
    } else {
        if object.has("cluster") {
            object.fail(r, "cluster", "only ready-ratio reads a cluster");
        }
        (object.required_string(r, "route"), None)
    };
    let version = match object.string(r, "version").as_deref() {
        None | Some("canary") => Some(VersionSelector::Canary),
        Some("stable") => Some(VersionSelector::Stable),
        Some("both") => Some(VersionSelector::Both),
        Some(other) => {
            object.fail(
                r,
                "version",
                format!("{other:?} is not canary, stable or both"),
            );
            None
        }
    };
    let quantile = object.float(r, "quantile");
    let quantity = match object.required_string(r, "quantity").as_deref() {
        None => None,
        Some("success-rate") => Some(EnvoyQuantity::SuccessRate),
        Some("error-rate") => Some(EnvoyQuantity::ErrorRate),
        Some("request-rate") => Some(EnvoyQuantity::RequestRate),
        Some("ready-ratio") => Some(EnvoyQuantity::ReadyRatio),
        Some("latency") => match quantile {
            Some(q) if q > 0.0 && q < 1.0 => Some(EnvoyQuantity::Latency { quantile: q }),
            Some(q) => {
                object.fail(
                    r,
                    "quantile",
                    format!("must be between 0 and 1 (e.g. 0.99), got {q}"),
                );
                None
            }
            None if object.has("quantile") => None,
            None => {
                object.fail(
                    r,
                    "quantile",
                    "missing; latency needs a quantile such as 0.99",
                );
                None
            }
        },
        Some(other) => {
            object.fail(
                r,
                "quantity",
                format!("{other:?} is not success-rate, error-rate, request-rate, latency or ready-ratio"),
            );
            None
        }
    };
    if quantile.is_some() && !matches!(quantity, Some(EnvoyQuantity::Latency { .. }) | None) {
        object.fail(r, "quantile", "only latency takes a quantile");
    }
    let window = object.duration(r, "window");
    if window.is_some_and(|w| w.is_zero()) {
        object.fail(r, "window", "must be longer than 0s");
    }
    if ready_ratio && cluster.is_none() {
        return None;
    }
    Some(EnvoyQuery {
        route: route?,
        cluster,
        version: version?,
        quantity: quantity?,
        window,
    })
}

/// `plugin`: exactly one of canary's own providers, under its plugin name.
fn read_plugin(r: &mut Reader, path: String, node: &Node) -> Option<Provider> {
    let object = Object::open(r, path, node, &PLUGINS, &[])?;
    let present: Vec<&str> = PLUGINS.into_iter().filter(|k| object.has(k)).collect();
    let [one] = present.as_slice() else {
        let reason = if present.is_empty() {
            format!(
                "no plugin; canary loads no metric plugins, it reads its own providers in this form: {}",
                PLUGINS.join(", ")
            )
        } else {
            format!(
                "more than one plugin ({}); set exactly one",
                present.join(", ")
            )
        };
        r.fail(object.line(), object.path.clone(), reason);
        return None;
    };
    let node = object.require(r, one)?;
    let at = object.at(one);
    match *one {
        "canary.dev/judge" => read_judge(r, at, node).map(Provider::Judge),
        "canary.dev/kubernetes" => read_kubernetes(r, at, node).map(Provider::Kubernetes),
        _ => read_envoy(r, at, node).map(Provider::Envoy),
    }
}

/// `judge`: `route`, `gate`, and the judge's settings under their own
/// names (`alpha`, `errorShare`, `successRisk`, `errors` and `latency`
/// with `absolute` and `relative`), each checked as the judge checks it.
fn read_judge(r: &mut Reader, path: String, node: &Node) -> Option<JudgeQuery> {
    let known = [
        "route",
        "gate",
        "alpha",
        "errorShare",
        "successRisk",
        "errors",
        "latency",
    ];
    let object = Object::open(r, path, node, &known, &[])?;
    let before = r.problems.len();
    let route = object.required_string(r, "route");
    let gate = object.bool(r, "gate").unwrap_or(false);
    let mut settings = canary_judge::JudgeSettings::default();
    let mut latency_floor = DEFAULT_LATENCY_FLOOR;
    for (key, value) in [
        ("alpha", &mut settings.alpha),
        ("errorShare", &mut settings.error_share),
        ("successRisk", &mut settings.success_risk),
    ] {
        if let Some(v) = object.float(r, key) {
            *value = v;
        }
    }
    for (key, tolerance) in [
        ("errors", &mut settings.errors),
        ("latency", &mut settings.latency),
    ] {
        let Some(node) = object.get(key) else {
            continue;
        };
        let fields: &[&str] = if key == "latency" {
            &["absolute", "relative", "ignoreBelow"]
        } else {
            &["absolute", "relative"]
        };
        let Some(inner) = Object::open(r, object.at(key), node, fields, &[]) else {
            continue;
        };
        if let Some(floor) = inner.duration(r, "ignoreBelow") {
            latency_floor = floor;
        }
        if let Some(v) = inner.float(r, "absolute") {
            tolerance.absolute = v;
        }
        if let Some(v) = inner.float(r, "relative") {
            tolerance.relative = v;
        }
    }
    if r.problems.len() == before {
        if let Err(error) = settings.validate() {
            let key = judge_setting_key(&error);
            // `errors.absolute`: the line of `errors`.
            let head = key.split('.').next().unwrap_or(key);
            let line = object.get(head).map_or(object.line(), |node| node.line);
            r.fail(line, object.at(key), error.to_string());
        }
    }
    if r.problems.len() > before {
        return None;
    }
    Some(JudgeQuery {
        route: route?,
        gate,
        settings,
        latency_floor,
    })
}

/// The template key of the setting a judge settings error is about.
fn judge_setting_key(error: &canary_judge::SettingsError) -> &'static str {
    use canary_judge::SettingsError;
    match error {
        SettingsError::NotAProbability { field, .. }
        | SettingsError::BadTolerance { field, .. } => field,
        SettingsError::SuccessRiskBelowAlpha { .. } => "successRisk",
    }
}

fn read_kubernetes(r: &mut Reader, path: String, node: &Node) -> Option<KubernetesQuery> {
    let known = ["namespace", "selector", "quantity"];
    let object = Object::open(r, path, node, &known, &[])?;
    let namespace = object.string(r, "namespace");
    let selector = object.required_string(r, "selector");
    let quantity = match object.required_string(r, "quantity").as_deref() {
        None => None,
        Some("ready-ratio") => Some(KubernetesQuantity::ReadyRatio),
        Some("cpu-ratio") => Some(KubernetesQuantity::CpuRatio),
        Some(other) => {
            object.fail(
                r,
                "quantity",
                format!("{other:?} is not ready-ratio or cpu-ratio"),
            );
            None
        }
    };
    Some(KubernetesQuery {
        namespace,
        selector: selector?,
        quantity: quantity?,
    })
}

/// A document value as JSON (for `jsonBody`).
fn to_json(node: &Node) -> serde_json::Value {
    use crate::yaml::Value;
    match &node.value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => serde_json::Value::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Value::Str(s) => serde_json::Value::String(s.clone()),
        Value::Seq(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => serde_json::Value::Object(
            entries
                .iter()
                .map(|e| (e.key.clone(), to_json(&e.value)))
                .collect(),
        ),
    }
}
