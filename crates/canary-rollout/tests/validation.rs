//! Bad rollout files: each problem is reported precisely, as
//! `file:line: field.path: reason`.

mod support;

use support::{example, load, problems};

const TEMPLATE: &str = "---\napiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata: {name: t}\nspec:\n  args: [{name: ns}]\n  metrics:\n  - name: m\n    successCondition: result > 0.5\n    provider: {kubernetes: {namespace: '{{args.ns}}', selector: a=b, quantity: ready-ratio}}\n";

fn rollout(spec_body: &str) -> String {
    format!("apiVersion: canary.dev/v1alpha1\nkind: CanaryRollout\nmetadata:\n  name: web\nspec:\n  routes: [web]\n  stableVersion: v1\n  canaryVersion: v2\n{spec_body}{TEMPLATE}")
}

#[test]
fn the_shipped_examples_are_valid() {
    let seed = example("rollout.yaml");
    let health = example("pod-health.yaml");
    let loaded = load(&[
        ("examples/rollout.yaml", &seed),
        ("examples/pod-health.yaml", &health),
    ])
    .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(loaded.spec.steps.len(), 13);
    let multi = example("rollout-prometheus.yaml");
    let loaded =
        load(&[("examples/rollout-prometheus.yaml", &multi)]).unwrap_or_else(|err| panic!("{err}"));
    assert!(loaded.spec.background.is_some());
}

#[test]
fn malformed_yaml() {
    let problems = problems(&[("r.yaml", "spec:\n  steps: [\n")]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("r.yaml:3: not valid YAML"),
        "{problems:?}"
    );
}

#[test]
fn unknown_and_unsupported_fields() {
    let problems = problems(&[(
        "r.yaml",
        &rollout("  stepz: []\n  strategy: {canary: {}}\n  steps:\n  - setWeight: 10\n"),
    )])
    .join("\n");
    assert!(
        problems.contains(
            "r.yaml:9: spec.stepz: unknown field; expected one of: routes, stableVersion"
        ),
        "{problems}"
    );
    assert!(
        problems.contains(
            "r.yaml:10: spec.strategy: not supported: steps and analysis sit directly under spec"
        ),
        "{problems}"
    );
}

#[test]
fn steps_out_of_range() {
    let problems = problems(&[("r.yaml", &rollout("  steps:\n  - setWeight: 101\n  - setWeight: -1\n  - setWeight: 0.001\n  - pause: {duration: -5}\n  analysis:\n    startingStep: 4\n    templates: [{templateName: t}]\n    args: [{name: ns, value: x}]\n"))]);
    assert_eq!(
        problems,
        vec![
            "r.yaml:10: spec.steps[0].setWeight: weight must be between 0 and 100 (percent), got 101",
            "r.yaml:11: spec.steps[1].setWeight: weight must be between 0 and 100 (percent), got -1",
            "r.yaml:12: spec.steps[2].setWeight: weight has a resolution of 0.01 percent, got 0.001",
            "r.yaml:13: spec.steps[3].pause.duration: must not be negative, got -5",
            "r.yaml:15: spec.analysis.startingStep: is 4, but there are only 4 steps (0 to 3)",
        ]
    );
}

#[test]
fn a_template_arg_the_rollout_does_not_supply() {
    let problems = problems(&[(
        "r.yaml",
        &rollout("  steps:\n  - analysis:\n      templates: [{templateName: t}]\n"),
    )]);
    assert_eq!(
        problems,
        vec!["r.yaml:11: spec.steps[0].analysis.args: template \"t\" needs argument \"ns\"; add {name: ns, value: …}"]
    );
}

#[test]
fn a_template_that_references_a_missing_arg_reports_in_its_own_file() {
    let rollout_text = "apiVersion: canary.dev/v1alpha1\nkind: CanaryRollout\nmetadata: {name: web}\nspec:\n  routes: [web]\n  stableVersion: v1\n  canaryVersion: v2\n  templateFiles: [t.yaml]\n  steps:\n  - analysis: {templates: [{templateName: t}]}\n";
    let template = "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata: {name: t}\nspec:\n  metrics:\n  - name: m\n    provider:\n      prometheus:\n        query: 'up{job=\"{{args.job}}\"}'\n";
    let problems = problems(&[("dir/r.yaml", rollout_text), ("dir/t.yaml", template)]);
    assert_eq!(
        problems,
        vec!["dir/t.yaml:9: spec.metrics[0].provider.prometheus.query: uses {{args.job}} but spec.args declares no argument \"job\""]
    );
}

#[test]
fn a_condition_that_does_not_parse() {
    let text = rollout("  steps:\n  - setWeight: 1\n").replace("result > 0.5", "result >> 0.5");
    let problems = problems(&[("r.yaml", &text)]);
    assert_eq!(problems, vec!["r.yaml:19: spec.metrics[0].successCondition: does not parse: unexpected `> 0.5` at column 9"]);
}

#[test]
fn a_missing_template_and_a_missing_template_file() {
    let problems = problems(&[("r.yaml", &rollout("  templateFiles: [nope.yaml]\n  steps:\n  - analysis: {templates: [{templateName: other, clusterScope: true}]}\n"))]);
    assert_eq!(
        problems,
        vec![
            "r.yaml:9: spec.templateFiles: cannot read nope.yaml: no such file",
            "r.yaml:11: spec.steps[0].analysis.templates[0].templateName: no ClusterAnalysisTemplate named \"other\" in this file or its templateFiles (found: none)",
        ]
    );
}

#[test]
fn versions_and_routes_must_be_usable_in_the_filter() {
    let text = rollout("  steps:\n  - setWeight: 1\n")
        .replace("routes: [web]", "routes: []")
        .replace("canaryVersion: v2", "canaryVersion: v1");
    let problems = problems(&[("r.yaml", &text)]);
    assert_eq!(
        problems,
        vec![
            "r.yaml:6: spec.routes: is empty; name the filter route entries this rollout drives",
            "r.yaml:8: spec.canaryVersion: is \"v1\", the same as stableVersion",
        ]
    );
}

#[test]
fn one_rollout_per_file_and_only_known_kinds() {
    let text = format!(
        "{}---\napiVersion: v1\nkind: ConfigMap\n",
        rollout("  steps:\n  - setWeight: 1\n")
    );
    let problems = problems(&[("r.yaml", &text)]);
    assert_eq!(problems, vec!["r.yaml:22: kind: \"ConfigMap\" is not CanaryRollout, AnalysisTemplate or ClusterAnalysisTemplate"]);
    let problems = problems_of_template_only();
    assert_eq!(
        problems,
        vec!["t.yaml: no CanaryRollout document in this file"]
    );
}

fn problems_of_template_only() -> Vec<String> {
    problems(&[("t.yaml", TEMPLATE)])
}

#[test]
fn a_step_with_two_actions_or_an_unknown_one() {
    let problems = problems(&[(
        "r.yaml",
        &rollout(
            "  steps:\n  - {setWeight: 5, pause: {}}\n  - setCanaryScale: {replicas: 1}\n  - {}\n",
        ),
    )]);
    assert_eq!(
        problems,
        vec![
            "r.yaml:10: spec.steps[0]: a step does one thing; this one has setWeight and pause: split it into steps",
            "r.yaml:11: spec.steps[1].setCanaryScale: not supported: canary does not scale workloads",
            "r.yaml:12: spec.steps[2]: empty step; write one of: setWeight, pause, analysis, setHeaderRoute",
        ]
    );
}
