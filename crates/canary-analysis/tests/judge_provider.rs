//! The judge as a metric provider: its settings in the file form and in
//! the plugin form Argo's CRD stores, the rules of a judge metric, and a
//! precise problem for every bad setting.

mod support;

use canary_analysis::provider::{JudgeQuery, Provider};
use canary_analysis::{MeasurementPhase, MeasurementResult, MetricValue};
use support::{template, template_problems, template_yaml};

fn judge_of(metric: &str) -> JudgeQuery {
    let template = template(&template_yaml(metric));
    let metrics = template
        .instantiate(&Default::default())
        .unwrap_or_else(|p| panic!("{p:?}"));
    match &metrics[0].provider {
        Provider::Judge(query) => query.clone(),
        other => panic!("not a judge: {other:?}"),
    }
}

fn problems_of(metric_fields: &str) -> Vec<String> {
    template_problems(&template_yaml(&format!(
        "  - name: m\n    interval: 1s\n{metric_fields}"
    )))
}

#[test]
fn the_file_form_reads_every_setting_and_defaults_the_rest() {
    let query = judge_of(
        "  - name: judge\n    interval: 1s\n    provider:\n      judge:\n        route: app\n        alpha: 0.02\n        errors: {absolute: 0.005, relative: 0.25}\n",
    );
    assert_eq!(query.route, "app");
    assert!(!query.gate);
    assert_eq!(query.settings.alpha, 0.02);
    assert_eq!(query.settings.errors.absolute, 0.005);
    assert_eq!(query.settings.errors.relative, 0.25);
    let defaults = canary_judge::JudgeSettings::default();
    assert_eq!(query.settings.latency, defaults.latency);
    assert_eq!(query.settings.success_risk, defaults.success_risk);
    assert_eq!(query.settings.error_share, defaults.error_share);
    assert_eq!(
        query.latency_floor,
        canary_analysis::provider::DEFAULT_LATENCY_FLOOR
    );
    let floored = judge_of(
        "  - name: judge\n    interval: 1s\n    provider:\n      judge: {route: app, latency: {ignoreBelow: 20ms}}\n",
    );
    assert_eq!(floored.latency_floor, std::time::Duration::from_millis(20));
    assert_eq!(floored.settings.latency, defaults.latency);
}

#[test]
fn the_plugin_form_is_the_same_provider() {
    let file = judge_of(
        "  - name: judge\n    interval: 1s\n    provider:\n      judge: {route: app, gate: true, latency: {absolute: 0.05}}\n",
    );
    let plugin = judge_of(
        "  - name: judge\n    interval: 1s\n    consecutiveSuccessLimit: 1\n    provider:\n      plugin:\n        canary.dev/judge: {route: app, gate: true, latency: {absolute: 0.05}}\n",
    );
    assert_eq!(file, plugin);
    assert!(plugin.gate);
    let envoy = template(&template_yaml(
        "  - name: errors\n    interval: 1s\n    successCondition: result < 0.01\n    provider:\n      plugin:\n        canary.dev/envoy: {route: app, quantity: error-rate}\n",
    ));
    let metrics = envoy.instantiate(&Default::default()).unwrap();
    assert!(matches!(metrics[0].provider, Provider::Envoy(_)));
    let kubernetes = template(&template_yaml(
        "  - name: ready\n    interval: 1s\n    successCondition: result >= 0.5\n    provider:\n      plugin:\n        canary.dev/kubernetes: {namespace: shop, selector: app=web, quantity: ready-ratio}\n",
    ));
    let metrics = kubernetes.instantiate(&Default::default()).unwrap();
    assert!(matches!(metrics[0].provider, Provider::Kubernetes(_)));
}

#[test]
fn bad_settings_are_refused_with_their_line_and_path() {
    let problems =
        problems_of("    provider:\n      judge:\n        route: app\n        alpha: 1.5\n");
    assert_eq!(
        problems,
        vec!["12: spec.metrics[0].provider.judge.alpha: alpha is 1.5: it must be a probability strictly between 0 and 1"]
    );
    let problems = problems_of(
        "    provider:\n      plugin:\n        canary.dev/judge:\n          route: app\n          errors: {absolute: -0.1}\n",
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("13: spec.metrics[0].provider.plugin.canary.dev/judge.errors.absolute: errors.absolute is -0.1"),
        "{problems:?}"
    );
    let problems =
        problems_of("    provider:\n      judge: {route: app, alpha: 0.1, successRisk: 0.05}\n");
    assert_eq!(
        problems,
        vec!["10: spec.metrics[0].provider.judge.successRisk: successRisk (0.05) must be at least alpha (0.1)"]
    );
    let problems = problems_of("    provider:\n      judge: {alpha: 0.01, tolerance: 2}\n");
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].contains("provider.judge.tolerance: unknown field"),
        "{problems:?}"
    );
    assert!(
        problems[1].contains("provider.judge.route: missing"),
        "{problems:?}"
    );
}

#[test]
fn other_plugins_are_refused() {
    let problems = problems_of(
        "    provider:\n      plugin:\n        argoproj-labs/sample-prometheus: {query: x}\n",
    );
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("provider.plugin.argoproj-labs/sample-prometheus: unknown field; expected one of: canary.dev/judge, canary.dev/envoy, canary.dev/kubernetes"), "{problems:?}");
    assert!(
        problems[1].contains("provider.plugin: no plugin; canary loads no metric plugins"),
        "{problems:?}"
    );
}

#[test]
fn the_judge_decides_each_measurement() {
    for (field, expect) in [
        (
            "    successCondition: result > 1\n",
            "successCondition: the judge decides",
        ),
        (
            "    failureCondition: result > 1\n",
            "failureCondition: the judge decides",
        ),
        (
            "    minSamples: 20\n",
            "minSamples: the judge needs no minimum",
        ),
        (
            "    consecutiveSuccessLimit: 3\n",
            "consecutiveSuccessLimit: a judge without `gate: true`",
        ),
    ] {
        let problems = problems_of(&format!(
            "{field}    provider:\n      judge: {{route: app}}\n"
        ));
        assert_eq!(problems.len(), 1, "{field}: {problems:?}");
        assert!(problems[0].contains(expect), "{problems:?}");
    }
}

#[test]
fn a_measurement_fails_exactly_when_the_judge_says_failed() {
    let spec =
        support::spec("  - name: m\n    interval: 1s\n    provider:\n      judge: {route: app}\n");
    let mut run = canary_analysis::AnalysisRun::start(spec, support::at(0));
    let said = |verdict: &str| {
        MeasurementResult::sampled(
            MetricValue::Map(
                [(
                    "verdict".to_owned(),
                    MetricValue::String(verdict.to_owned()),
                )]
                .into_iter()
                .collect(),
            ),
            100,
        )
    };
    support::record(&mut run, 1, said("NotEnoughData"));
    support::record(&mut run, 2, said("Successful"));
    let phases: Vec<MeasurementPhase> = run.state().metrics[0]
        .measurements
        .iter()
        .map(|m| m.phase)
        .collect();
    assert_eq!(phases, vec![MeasurementPhase::Successful; 2]);
    support::record(&mut run, 3, said("Failed"));
    assert_eq!(
        support::metric_phase(&run),
        canary_analysis::AnalysisPhase::Failed
    );
}
