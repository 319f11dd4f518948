//! The `CanaryRollout` custom resource (`canary.dev/v1alpha1`).
//!
//! The spec is the rollout file format (`docs/rollout-format.md`) with the
//! same field names, minus `templateFiles` (templates are objects in the
//! cluster, named by `templateName` and `clusterScope`), plus what only a
//! cluster has: the Istio object that carries the filter configuration
//! (`target`), the two Deployments (`stableWorkload`, `canaryWorkload`) and
//! how a promotion ends (`promotion`).
//!
//! The status holds the rollout's whole position (`state`, the driver's
//! saved [`canary_rollout::driver::Position`]), so a restarted or moved
//! controller resumes where the last one stopped, and the driver's report
//! for people (`report`, with conditions).
//!
//! The CRD YAML (`manifests/kubernetes/crd/crd.yaml`) is generated from these
//! types by [`crd_yaml`]; a test keeps the committed file equal to it.

use std::borrow::Cow;

use canary_rollout::driver::Report;
use kube::CustomResource;
use kube::CustomResourceExt;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

/// The resource's API group.
pub const GROUP: &str = "canary.dev";
/// The resource's API version within the group.
pub const VERSION: &str = "v1alpha1";
/// The resource's plural, the path segment of its URLs.
pub const PLURAL: &str = "canaryrollouts";

/// A progressive rollout of one canary Deployment next to one stable
/// Deployment, with traffic split by the canary filter through an Istio
/// `WasmPlugin` or `TrafficExtension`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
// Each `printcolumn(...)` repeats `type_ = "string"`, which clippy takes for
// a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "canary.dev",
    version = "v1alpha1",
    kind = "CanaryRollout",
    namespaced,
    status = "CanaryRolloutStatus",
    derive = "PartialEq",
    shortname = "crollout",
    category = "canary",
    doc = "A progressive rollout: steps that move traffic from a stable to a canary Deployment through the canary filter, gated by Argo-compatible analysis, with rollback and promotion.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Step",
        type_ = "string",
        json_path = ".status.report.currentStep"
    ),
    printcolumn(
        name = "Canary",
        type_ = "string",
        json_path = ".status.report.traffic.canary"
    ),
    printcolumn(
        name = "Weight",
        type_ = "number",
        json_path = ".status.report.traffic.canaryWeight"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CanaryRolloutSpec {
    /// The Istio object whose filter configuration the controller writes.
    pub target: PluginTarget,
    /// Name of the Deployment (in the rollout's namespace) serving the
    /// stable version.
    pub stable_workload: String,
    /// Name of the Deployment (in the rollout's namespace) serving the
    /// canary version. A change of its pod template starts a new rollout.
    pub canary_workload: String,
    /// How a promotion ends: `copyTemplate` (default) copies the canary's
    /// pod template to the stable Deployment and returns all traffic to
    /// it; `swapNames` makes the canary's version name the stable one in
    /// the filter configuration and leaves the Deployments as they are.
    #[serde(default)]
    pub promotion: Promotion,
    /// Names of the filter configuration's route entries (`routes[].name`)
    /// this rollout drives.
    #[schemars(length(min = 1))]
    pub routes: Vec<String>,
    /// The stable version's name as the filter knows it (the value of the
    /// routing header that selects it).
    pub stable_version: String,
    /// The canary version's name as the filter knows it.
    pub canary_version: String,
    /// The steps, in order; each does exactly one thing.
    #[schemars(length(min = 1))]
    pub steps: Vec<RolloutStep>,
    /// Analysis running in the background from `startingStep` to the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<BackgroundAnalysis>,
    /// How long an analysis may go without enough data before the rollout
    /// is aborted (`10m` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline: Option<String>,
    /// How long every proxy may take to show a new split before the
    /// rollout rolls back (default: what the controller's observer needs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_deadline: Option<String>,
}

/// Which Istio object carries the filter configuration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginTarget {
    /// `WasmPlugin` (`spec.pluginConfig`) or `TrafficExtension`
    /// (`spec.wasm.pluginConfig`).
    pub kind: TargetKind,
    /// The object's name.
    pub name: String,
    /// The object's namespace; the rollout's own when unset (set it for a
    /// mesh-wide plugin in the root namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// The kinds of object that can carry the filter.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TargetKind {
    /// `extensions.istio.io/v1alpha1` `WasmPlugin`.
    WasmPlugin,
    /// `extensions.istio.io/v1alpha1` `TrafficExtension`.
    TrafficExtension,
}

/// How a promotion ends.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Promotion {
    /// Copy the canary's pod template to the stable Deployment, wait until
    /// it is fully ready, return all traffic to it, scale the canary down.
    #[default]
    CopyTemplate,
    /// Make the canary's version name the stable one in the filter
    /// configuration; no Deployment is changed.
    SwapNames,
}

/// One step: exactly one of its fields is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStep {
    /// Send this percentage of requests to the canary (0 to 100,
    /// resolution 0.01).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub set_weight: Option<f64>,
    /// Wait: `{}` until a person resumes, `{duration: 30s}` for a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseStep>,
    /// Run analysis templates; the next step starts when it passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisStep>,
    /// Let the override header pick the canary (`enabled: true`), or stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_header_route: Option<HeaderRouteStep>,
}

/// `pause`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PauseStep {
    /// How long; seconds as a number, or a duration such as `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<DurationValue>,
}

/// A duration written as seconds (`30`) or with units (`30s`, `1m30s`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum DurationValue {
    /// Seconds.
    Seconds(i64),
    /// Go-style duration text.
    Text(String),
}

impl JsonSchema for DurationValue {
    fn schema_name() -> Cow<'static, str> {
        "DurationValue".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Seconds as a number, or a duration with units such as 30s or 1m30s.",
            "x-kubernetes-int-or-string": true
        })
    }
}

/// `setHeaderRoute`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderRouteStep {
    /// Whether the override header may pick the canary.
    pub enabled: bool,
}

/// An analysis: templates (by reference to objects in the cluster) and
/// the arguments they get.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisStep {
    /// The templates whose metrics make up the analysis.
    #[schemars(length(min = 1))]
    pub templates: Vec<TemplateReference>,
    /// Values for the templates' arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<AnalysisArg>,
    /// Metrics whose verdicts never change the analysis's verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<MetricSelector>,
    /// How many measurements to keep per metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<MeasurementRetention>,
}

/// `spec.analysis`: an analysis plus the step it starts at.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackgroundAnalysis {
    /// The analysis.
    #[serde(flatten)]
    pub analysis: AnalysisStep,
    /// Index of the step from which it runs (0 when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bounded_count")]
    pub starting_step: Option<u32>,
}

/// A template by name: an `AnalysisTemplate` in the rollout's namespace,
/// or a `ClusterAnalysisTemplate` with `clusterScope: true`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateReference {
    /// The template's `metadata.name`.
    pub template_name: String,
    /// True for a `ClusterAnalysisTemplate`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster_scope: bool,
}

/// A value for a template argument.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisArg {
    /// The argument's name.
    pub name: String,
    /// Its value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where its value comes from instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ArgValueFrom>,
}

/// `valueFrom` of an argument.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArgValueFrom {
    /// A key of a Secret in the rollout's namespace.
    pub secret_key_ref: SecretKeySelector,
}

/// A key of a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    /// The Secret's name.
    pub name: String,
    /// The key inside it.
    pub key: String,
}

/// A metric by name (`*` for all).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricSelector {
    /// The metric's name, or `*`.
    pub metric_name: String,
}

/// How many measurements of a metric to keep.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementRetention {
    /// The metric's name, or `*`.
    pub metric_name: String,
    /// How many measurements to keep.
    #[schemars(schema_with = "bounded_count")]
    pub limit: i64,
}

/// What the controller reports, and the position it resumes from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryRolloutStatus {
    /// The `metadata.generation` this status was written for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The report's phase (`Progressing`, `Paused`, `PausedInconclusive`,
    /// `Held`, `Promoting`, `Promoted`, `RollingBack`, `Aborted`), or
    /// `Pending` (waiting for the canary Deployment before the first
    /// step) or `Invalid`. A `copyTemplate` promotion stays `Promoting`
    /// until traffic is back on the stable Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Why the rollout is where it is, or what it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Fingerprint of the canary Deployment's pod template this rollout is
    /// for; a different one starts a new rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_revision: Option<String>,
    /// The rollout's report (`canary status` shows the same): step, the
    /// intended split, whether the proxies show it, analyses, recent
    /// events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserved_object")]
    pub report: Option<Report>,
    /// `SpecValid`, `Progressing`, and while they hold the report's
    /// conditions: `Drift`, `Held`, `PushFailing`, `SplitNotSeen`,
    /// `GuardTripped`, `Unverified`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The rollout's saved position: what a restarted controller resumes
    /// from. Not meant to be edited; an edited one is held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserved_object")]
    pub state: Option<serde_json::Value>,
}

/// A condition, as Kubernetes API conventions shape them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition's type.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason.
    pub reason: String,
    /// Details for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The generation the condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A count or an index, `0..=u32::MAX`: the API server refuses what the
/// Rust side would not decode (a negative or too large value would
/// otherwise break the controller's watch), and the format is one
/// Kubernetes knows (`int64`; it drops `uint32` with a warning).
fn bounded_count(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "integer",
        "format": "int64",
        "minimum": 0,
        "maximum": u32::MAX
    })
}

/// An object whose fields the API server keeps as they are.
fn preserved_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// The CRD as YAML, as committed in `manifests/kubernetes/crd/crd.yaml`.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    let header =
        "# Generated from crates/canary-operator/src/resource.rs by `make crd`; do not edit.\n";
    Ok(format!(
        "{header}{}",
        serde_yaml::to_string(&CanaryRollout::crd())?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;

    #[test]
    fn resource_identity_is_canary_dev_v1alpha1() {
        assert_eq!(CanaryRollout::group(&()), GROUP);
        assert_eq!(CanaryRollout::version(&()), VERSION);
        assert_eq!(CanaryRollout::plural(&()), PLURAL);
        assert_eq!(CanaryRollout::kind(&()), "CanaryRollout");
        assert_eq!(
            canary_rollout::spec::API_VERSION,
            format!("{GROUP}/{VERSION}")
        );
    }

    #[test]
    fn durations_read_as_numbers_or_text() {
        let pause: PauseStep = serde_json::from_str(r#"{"duration": 30}"#).unwrap();
        assert_eq!(pause.duration, Some(DurationValue::Seconds(30)));
        let pause: PauseStep = serde_json::from_str(r#"{"duration": "1m30s"}"#).unwrap();
        assert_eq!(pause.duration, Some(DurationValue::Text("1m30s".into())));
    }

    #[test]
    fn promotion_defaults_to_copying_the_template() {
        let spec: CanaryRolloutSpec = serde_json::from_value(serde_json::json!({
            "target": {"kind": "WasmPlugin", "name": "canary"},
            "stableWorkload": "web-v1", "canaryWorkload": "web-v2",
            "routes": ["web"], "stableVersion": "web-v1", "canaryVersion": "web-v2",
            "steps": [{"setWeight": 10}]
        }))
        .unwrap();
        assert_eq!(spec.promotion, Promotion::CopyTemplate);
        let swap: Promotion = serde_json::from_str(r#""swapNames""#).unwrap();
        assert_eq!(swap, Promotion::SwapNames);
    }
}
