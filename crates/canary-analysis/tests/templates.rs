//! Reading Argo templates: what is accepted as written, and a precise
//! problem for everything else.

mod support;

use std::collections::BTreeMap;

use canary_analysis::args::{Arg, ArgValue};
use canary_analysis::compose::{compose, ProblemSource, Reference};
use canary_analysis::provider::{KubernetesQuantity, Provider};
use canary_analysis::TemplateScope;
use support::{template, template_problems, template_yaml};

const ARGO_TEMPLATE: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: ClusterAnalysisTemplate
metadata:
  name: success-rate
  namespace: ignored
  labels: {team: web}
spec:
  args:
  - name: service-name
  - name: threshold
    value: "0.95"
  metrics:
  - name: success-rate
    interval: 5m
    count: "3"
    successCondition: result[0] >= {{args.threshold}}
    failureLimit: 3
    provider:
      prometheus:
        address: http://prometheus.example.com:9090
        timeout: 20
        query: |
          sum(irate(istio_requests_total{destination_service=~"{{ args.service-name }}",response_code!~"5.*"}[5m]))
  dryRun:
  - metricName: "*"
  measurementRetention:
  - metricName: success-rate
    limit: 20
"#;

#[test]
fn reads_an_argo_template_as_written_and_substitutes_args() {
    let template = template(ARGO_TEMPLATE);
    assert_eq!(template.name, "success-rate");
    assert_eq!(template.scope, TemplateScope::Cluster);
    assert_eq!(template.metric_names, vec!["success-rate"]);
    let values = BTreeMap::from([
        ("service-name".to_owned(), "web.prod.svc".to_owned()),
        ("threshold".to_owned(), "0.99".to_owned()),
    ]);
    let metrics = template.instantiate(&values).expect("instantiates");
    let metric = &metrics[0];
    assert_eq!(
        metric.count,
        Some(3),
        "count as a string, like Argo's IntOrString"
    );
    assert_eq!(
        metric.success_condition.as_ref().map(|c| c.source()),
        Some("result[0] >= 0.99")
    );
    let Provider::Prometheus(query) = &metric.provider else {
        panic!("prometheus expected, got {:?}", metric.provider);
    };
    assert!(
        query
            .query
            .contains("destination_service=~\"web.prod.svc\""),
        "{}",
        query.query
    );
    assert_eq!(query.timeout, Some(std::time::Duration::from_secs(20)));
}

#[test]
fn composes_templates_with_the_rollouts_args() {
    let cluster = template(ARGO_TEMPLATE);
    let health = template(&template_yaml(
        "  - name: ready\n    successCondition: result >= 0.5\n    provider: {kubernetes: {selector: app=web, quantity: ready-ratio}}\n",
    ));
    let args = [Arg {
        name: "service-name".into(),
        value: Some(ArgValue::Literal("web".into())),
        line: 3,
    }];
    let spec = compose(
        &[&cluster, &health],
        Reference {
            args: &args,
            ..Reference::default()
        },
        &|_| None,
    )
    .expect("composes");
    let names: Vec<&str> = spec.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, vec!["success-rate", "ready"]);
    assert!(spec.is_dry_run("success-rate") && !spec.is_dry_run("ready"));
    assert_eq!(spec.retention_of("success-rate"), 20);
    assert!(matches!(
        spec.metric("ready").map(|m| &m.provider),
        Some(Provider::Kubernetes(k)) if k.quantity == KubernetesQuantity::ReadyRatio
    ));
}

#[test]
fn a_missing_arg_value_an_unknown_arg_and_a_twice_defined_metric_are_problems() {
    let cluster = template(ARGO_TEMPLATE);
    let stray = [Arg {
        name: "servce-name".into(),
        value: Some(ArgValue::Literal("web".into())),
        line: 7,
    }];
    let reference = Reference {
        path: "spec.steps[1].analysis",
        line: 5,
        args: &stray,
        ..Reference::default()
    };
    let problems = compose(&[&cluster, &cluster], reference, &|_| None).expect_err("problems");
    let text: Vec<String> = problems.iter().map(|p| p.problem.to_string()).collect();
    assert!(text.iter().any(|t| t == "7: spec.steps[1].analysis.args[0].name: no template (success-rate, success-rate) declares an argument \"servce-name\""), "{text:#?}");
    assert!(
        text.iter()
            .any(|t| t.contains("needs argument \"service-name\"")),
        "{text:#?}"
    );
    assert!(problems
        .iter()
        .all(|p| p.source == ProblemSource::Reference));
}

fn problems_of(metric_fields: &str) -> Vec<String> {
    template_problems(&template_yaml(&format!("  - name: m\n{metric_fields}")))
}

const PROVIDER: &str = "    provider: {kubernetes: {selector: a=b, quantity: ready-ratio}}\n";

#[test]
fn unknown_fields_are_refused_with_their_line_and_the_allowed_names() {
    let problems = problems_of(&format!(
        "    successCondition: result > 1\n    failurLimit: 2\n{PROVIDER}"
    ));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with(
            "9: spec.metrics[0].failurLimit: unknown field; expected one of: name, interval"
        ),
        "{problems:?}"
    );
}

#[test]
fn argo_features_canary_lacks_are_refused_not_ignored() {
    let problems = problems_of("    provider:\n      datadog: {query: x}\n");
    assert_eq!(problems, vec!["9: spec.metrics[0].provider.datadog: not supported: canary supports the prometheus, web, envoy, judge and kubernetes providers"]);
    let problems = problems_of("    provider:\n      web: {url: 'http://x', authentication: {}}\n");
    assert!(
        problems[0].contains("provider.web.authentication: not supported"),
        "{problems:?}"
    );
}

#[test]
fn a_reference_to_an_undeclared_arg_is_refused() {
    let problems = problems_of(
        "    provider:\n      kubernetes: {selector: 'app={{args.app}}', quantity: ready-ratio}\n",
    );
    assert_eq!(problems, vec!["9: spec.metrics[0].provider.kubernetes.selector: uses {{args.app}} but spec.args declares no argument \"app\""]);
}

#[test]
fn a_condition_that_does_not_parse_is_refused_with_where() {
    let problems = problems_of(&format!(
        "    successCondition: result >= 0.5 &&\n{PROVIDER}"
    ));
    assert_eq!(problems, vec!["8: spec.metrics[0].successCondition: does not parse: the expression ends too early (after column 16)"]);
}

#[test]
fn argos_metric_rules_are_enforced() {
    let problems = problems_of(&format!(
        "    count: 3\n    successCondition: result > 1\n{PROVIDER}"
    ));
    assert!(
        problems[0].contains("interval: missing; count is 3"),
        "{problems:?}"
    );
    let problems = problems_of(&format!(
        "    interval: 1m\n    count: 2\n    failureLimit: 3\n{PROVIDER}"
    ));
    assert!(
        problems[0].contains("count: is 2, less than failureLimit (3)"),
        "{problems:?}"
    );
    let problems = problems_of(&format!(
        "    interval: 1m\n    failureLimit: -1\n{PROVIDER}"
    ));
    assert!(problems[0].contains("no way to fail"), "{problems:?}");
    let problems = problems_of(&format!("    interval: soon\n{PROVIDER}"));
    assert!(
        problems[0].contains("interval: \"soon\" is not a duration"),
        "{problems:?}"
    );
    let problems = problems_of("    minSamples: 10\n    provider: {prometheus: {query: up}}\n");
    assert!(
        problems[0].contains("minSamples: the prometheus provider reports no sample count"),
        "{problems:?}"
    );
}

#[test]
fn dry_run_must_name_a_metric() {
    let yaml = format!(
        "{}  dryRun:\n  - metricName: nope\n",
        template_yaml(&format!("  - name: m\n{PROVIDER}"))
    );
    let problems = template_problems(&yaml);
    assert_eq!(
        problems,
        vec!["10: spec.dryRun[0].metricName: no metric is named \"nope\"; metrics: m"]
    );
}

#[test]
fn malformed_yaml_is_reported_with_its_line() {
    let problems = template_problems(
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nspec: {metrics: [\n",
    );
    assert_eq!(problems.len(), 1);
    assert!(problems[0].starts_with("4: not valid YAML"), "{problems:?}");
}

#[test]
fn the_document_must_be_an_argo_template() {
    let problems = template_problems("apiVersion: argoproj.io/v1beta9\nkind: Rollout\nmetadata: {name: x}\nspec: {metrics: []}\n");
    assert!(
        problems.contains(
            &"1: apiVersion: \"argoproj.io/v1beta9\" is not argoproj.io/v1alpha1".to_owned()
        ),
        "{problems:?}"
    );
    assert!(
        problems.contains(
            &"2: kind: \"Rollout\" is not AnalysisTemplate or ClusterAnalysisTemplate".to_owned()
        ),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("spec.metrics: is empty")),
        "{problems:?}"
    );
}
