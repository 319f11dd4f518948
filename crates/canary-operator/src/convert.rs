//! From a `CanaryRollout` object and the template objects it names to the
//! engine's [`RolloutSpec`].
//!
//! The spec is written back out as the rollout file format (YAML text) and
//! read by the same reader `canary validate` uses, with each template as
//! one of its `templateFiles`. The resource and the file therefore accept
//! exactly the same rollouts, with the same checks and the same field
//! paths in every problem; only the place is named differently (the object
//! instead of `file:line`, since the lines are those of the generated
//! text).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::Path;

use canary_analysis::{SecretKeyRef, TemplateScope};
use canary_rollout::{load_rollout_with, RolloutSpec};
use serde_json::{json, Map, Value};

use crate::resource::{CanaryRolloutSpec, TemplateReference};

/// Argo Rollouts' API group, of `AnalysisTemplate` and
/// `ClusterAnalysisTemplate`.
pub const ARGO_GROUP: &str = "argoproj.io";
/// The templates' API version.
pub const ARGO_VERSION: &str = "v1alpha1";

/// The name of the generated rollout document among the generated files.
const ROLLOUT_FILE: &str = "rollout";

/// A template the rollout names, as one key: its name and scope.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TemplateKey {
    /// `metadata.name`.
    pub name: String,
    /// Namespaced (`AnalysisTemplate`) or cluster-wide.
    pub cluster_scope: bool,
}

impl TemplateKey {
    /// The template's scope.
    pub fn scope(&self) -> TemplateScope {
        if self.cluster_scope {
            TemplateScope::Cluster
        } else {
            TemplateScope::Namespaced
        }
    }

    /// `analysistemplate shop/pod-health`, `clusteranalysistemplate pod-health`.
    pub fn describe(&self, namespace: &str) -> String {
        if self.cluster_scope {
            format!("clusteranalysistemplate {}", self.name)
        } else {
            format!("analysistemplate {namespace}/{}", self.name)
        }
    }
}

/// A template object as read from the API server.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateObject {
    /// Which template.
    pub key: TemplateKey,
    /// The object as JSON (`apiVersion`, `kind`, `metadata`, `spec`).
    pub object: Value,
}

/// One problem with the rollout, placed on the object it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    /// `canaryrollout shop/web` or `analysistemplate shop/pod-health`.
    pub object: String,
    /// The field path, e.g. `spec.steps[0].setWeight`; may be empty.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.object)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.reason)
    }
}

/// Every problem found (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecProblems(pub Vec<SpecProblem>);

impl fmt::Display for SpecProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        canary_analysis::problem::write_lines(f, &self.0)
    }
}

/// The templates `spec` names, each once, in the order first named.
pub fn template_keys(spec: &CanaryRolloutSpec) -> Vec<TemplateKey> {
    let steps = spec.steps.iter().filter_map(|step| step.analysis.as_ref());
    let references = steps.flat_map(|analysis| analysis.templates.iter()).chain(
        spec.analysis
            .iter()
            .flat_map(|bg| bg.analysis.templates.iter()),
    );
    let mut keys: Vec<TemplateKey> = Vec::new();
    for TemplateReference {
        template_name,
        cluster_scope,
    } in references
    {
        let key = TemplateKey {
            name: template_name.clone(),
            cluster_scope: *cluster_scope,
        };
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

/// The Secrets' keys the rollout and its templates read, each once.
/// Nothing is read to find them: the conversion runs once with stand-in
/// values and records what it asked for.
pub fn secret_keys(
    name: &str,
    namespace: &str,
    spec: &CanaryRolloutSpec,
    templates: &[TemplateObject],
) -> Result<Vec<SecretKeyRef>, SpecProblems> {
    let asked: RefCell<Vec<SecretKeyRef>> = RefCell::new(Vec::new());
    let record = |reference: &SecretKeyRef| {
        let mut asked = asked.borrow_mut();
        if !asked.contains(reference) {
            asked.push(reference.clone());
        }
        Some("secret".to_owned())
    };
    rollout_spec(name, namespace, spec, templates, &record)?;
    Ok(asked.into_inner())
}

/// The rollout `name` in `namespace` as the engine runs it. `templates`
/// must hold every template [`template_keys`] names; `secret` gives the
/// values of `secretKeyRef` arguments.
pub fn rollout_spec(
    name: &str,
    namespace: &str,
    spec: &CanaryRolloutSpec,
    templates: &[TemplateObject],
    secret: &dyn Fn(&SecretKeyRef) -> Option<String>,
) -> Result<RolloutSpec, SpecProblems> {
    let rollout_object = format!("canaryrollout {namespace}/{name}");
    let encode_failed = |error: serde_yaml::Error| {
        SpecProblems(vec![SpecProblem {
            object: rollout_object.clone(),
            path: String::new(),
            reason: format!("cannot be written as a rollout document: {error}"),
        }])
    };
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    let mut objects: BTreeMap<String, String> = BTreeMap::new();
    let mut template_files = Vec::with_capacity(templates.len());
    for (i, template) in templates.iter().enumerate() {
        let file = format!("template-{i}");
        let text =
            serde_yaml::to_string(&template_document(&template.object)).map_err(encode_failed)?;
        files.insert(file.clone(), text);
        objects.insert(file.clone(), template.key.describe(namespace));
        template_files.push(file);
    }
    let document = rollout_document(name, spec, &template_files);
    files.insert(
        ROLLOUT_FILE.to_owned(),
        serde_yaml::to_string(&document).map_err(encode_failed)?,
    );
    objects.insert(ROLLOUT_FILE.to_owned(), rollout_object.clone());

    let read = |path: &Path| -> io::Result<String> {
        let key = path.to_string_lossy();
        files
            .get(key.as_ref())
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no document {key}")))
    };
    match load_rollout_with(Path::new(ROLLOUT_FILE), &read, secret) {
        Ok(loaded) => Ok(loaded.spec),
        Err(error) => Err(SpecProblems(
            error
                .0
                .into_iter()
                .map(|found| {
                    let file = found.file.to_string_lossy();
                    SpecProblem {
                        object: objects
                            .get(file.as_ref())
                            .cloned()
                            .unwrap_or_else(|| rollout_object.clone()),
                        path: found.problem.path,
                        reason: found.problem.reason,
                    }
                })
                .collect(),
        )),
    }
}

/// The rollout file format's document for `spec`.
fn rollout_document(name: &str, spec: &CanaryRolloutSpec, template_files: &[String]) -> Value {
    let mut body = Map::new();
    body.insert("routes".into(), json!(spec.routes));
    body.insert("stableVersion".into(), json!(spec.stable_version));
    body.insert("canaryVersion".into(), json!(spec.canary_version));
    body.insert("steps".into(), json!(spec.steps));
    if let Some(analysis) = &spec.analysis {
        body.insert("analysis".into(), json!(analysis));
    }
    if let Some(deadline) = &spec.progress_deadline {
        body.insert("progressDeadline".into(), json!(deadline));
    }
    if let Some(deadline) = &spec.verify_deadline {
        body.insert("verifyDeadline".into(), json!(deadline));
    }
    if !template_files.is_empty() {
        body.insert("templateFiles".into(), json!(template_files));
    }
    json!({
        "apiVersion": canary_rollout::spec::API_VERSION,
        "kind": canary_rollout::spec::KIND,
        "metadata": { "name": name },
        "spec": Value::Object(body),
    })
}

/// A template object reduced to what the template reader reads: the API
/// server's bookkeeping (`metadata.uid`, `managedFields`, `status`) is
/// left out.
fn template_document(object: &Value) -> Value {
    let mut document = Map::new();
    for key in ["apiVersion", "kind", "spec"] {
        if let Some(value) = object.get(key) {
            document.insert(key.to_owned(), value.clone());
        }
    }
    let name = object
        .get("metadata")
        .and_then(|metadata| metadata.get("name"))
        .cloned()
        .unwrap_or(Value::Null);
    document.insert("metadata".to_owned(), json!({ "name": name }));
    Value::Object(document)
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_rollout::Step;

    fn spec(value: Value) -> CanaryRolloutSpec {
        serde_json::from_value(value).unwrap()
    }

    fn seed_spec() -> CanaryRolloutSpec {
        spec(json!({
            "target": {"kind": "WasmPlugin", "name": "canary"},
            "stableWorkload": "web-v1", "canaryWorkload": "web-v2",
            "routes": ["web"], "stableVersion": "web-v1", "canaryVersion": "web-v2",
            "steps": [
                {"setWeight": 10},
                {"pause": {"duration": "30s"}},
                {"analysis": {"templates": [{"templateName": "pod-health"}],
                              "args": [{"name": "selector", "value": "app=web,version=web-v2"}]}},
                {"pause": {}},
                {"setWeight": 100}
            ]
        }))
    }

    fn pod_health() -> TemplateObject {
        TemplateObject {
            key: TemplateKey {
                name: "pod-health".into(),
                cluster_scope: false,
            },
            object: json!({
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "AnalysisTemplate",
                "metadata": {"name": "pod-health", "namespace": "shop", "uid": "u-1",
                             "resourceVersion": "12", "managedFields": [{"manager": "kubectl"}]},
                "spec": {
                    "args": [{"name": "selector"}],
                    "metrics": [{
                        "name": "pod-readiness", "interval": "15s", "count": 3, "failureLimit": 2,
                        "successCondition": "result >= 0.5",
                        "provider": {"kubernetes": {"selector": "{{args.selector}}", "quantity": "ready-ratio"}}
                    }]
                },
                "status": {}
            }),
        }
    }

    fn no_secrets(_: &SecretKeyRef) -> Option<String> {
        None
    }

    #[test]
    fn the_seed_rollout_converts_with_its_template() {
        let spec = rollout_spec("web", "shop", &seed_spec(), &[pod_health()], &no_secrets).unwrap();
        assert_eq!(spec.name, "web");
        assert_eq!(spec.routes, ["web"]);
        assert_eq!(spec.steps.len(), 5);
        assert!(matches!(spec.steps[1], Step::Pause(Some(d)) if d.as_secs() == 30));
        assert!(matches!(spec.steps[3], Step::Pause(None)));
        let Step::Analysis(analysis) = &spec.steps[2] else {
            panic!("step 3 is not an analysis");
        };
        assert_eq!(analysis.metrics.len(), 1);
        assert_eq!(analysis.metrics[0].name, "pod-readiness");
    }

    #[test]
    fn problems_name_the_object_and_the_field_of_the_resource() {
        let mut broken = seed_spec();
        broken.steps[0].pause = Some(Default::default());
        broken.canary_version = "web-v1".into();
        let problems = rollout_spec("web", "shop", &broken, &[pod_health()], &no_secrets)
            .unwrap_err()
            .to_string();
        assert!(
            problems.contains("canaryrollout shop/web: spec.canaryVersion: is \"web-v1\", the same as stableVersion"),
            "{problems}"
        );
        assert!(
            problems.contains("canaryrollout shop/web: spec.steps[0]: a step does one thing"),
            "{problems}"
        );
    }

    #[test]
    fn template_problems_name_the_template_object() {
        let mut template = pod_health();
        template.object["spec"]["metrics"][0]["interval"] = json!("soon");
        let problems = rollout_spec("web", "shop", &seed_spec(), &[template], &no_secrets)
            .unwrap_err()
            .to_string();
        assert!(
            problems.starts_with("analysistemplate shop/pod-health: spec.metrics[0].interval:"),
            "{problems}"
        );
    }

    #[test]
    fn secrets_are_found_without_reading_them_then_used() {
        let mut spec = seed_spec();
        let analysis = spec.steps[2].analysis.as_mut().unwrap();
        analysis.args[0].value = None;
        analysis.args[0].value_from = Some(crate::resource::ArgValueFrom {
            secret_key_ref: crate::resource::SecretKeySelector {
                name: "web-analysis".into(),
                key: "selector".into(),
            },
        });
        let keys = secret_keys("web", "shop", &spec, &[pod_health()]).unwrap();
        assert_eq!(
            keys,
            [SecretKeyRef {
                name: "web-analysis".into(),
                key: "selector".into()
            }]
        );
        let missing = rollout_spec("web", "shop", &spec, &[pod_health()], &no_secrets);
        assert!(missing.is_err());
        let found = rollout_spec("web", "shop", &spec, &[pod_health()], &|_| {
            Some("app=web".to_owned())
        })
        .unwrap();
        let Step::Analysis(analysis) = &found.steps[2] else {
            panic!("step 3 is not an analysis");
        };
        let text = format!("{:?}", analysis.metrics[0].provider);
        assert!(text.contains("app=web"), "{text}");
    }

    #[test]
    fn background_analysis_keeps_the_file_format_fields() {
        let mut value = serde_json::to_value(seed_spec()).unwrap();
        value["analysis"] = json!({
            "templates": [{"templateName": "pod-health"}],
            "args": [{"name": "selector", "value": "app=web"}],
            "startingStep": 2
        });
        let spec: CanaryRolloutSpec = serde_json::from_value(value).unwrap();
        let converted = rollout_spec("web", "shop", &spec, &[pod_health()], &no_secrets).unwrap();
        let background = converted.background.unwrap();
        assert_eq!(background.starting_step, 2);
        assert_eq!(background.analysis.metrics[0].name, "pod-readiness");
    }

    #[test]
    fn templates_are_listed_once_in_order() {
        let mut spec = seed_spec();
        spec.analysis = Some(crate::resource::BackgroundAnalysis {
            analysis: crate::resource::AnalysisStep {
                templates: vec![
                    TemplateReference {
                        template_name: "errors".into(),
                        cluster_scope: true,
                    },
                    TemplateReference {
                        template_name: "pod-health".into(),
                        cluster_scope: false,
                    },
                ],
                ..Default::default()
            },
            starting_step: None,
        });
        let keys = template_keys(&spec);
        assert_eq!(
            keys.iter().map(|k| k.describe("shop")).collect::<Vec<_>>(),
            [
                "analysistemplate shop/pod-health",
                "clusteranalysistemplate errors"
            ]
        );
    }
}
