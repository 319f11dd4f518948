fn main() {
    use canary_judge::simulation::*;
    let args: Vec<String> = std::env::args().collect();
    let runs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200);
    let gate = if args.get(2).map(String::as_str) == Some("successful") {
        Gate::Successful
    } else {
        Gate::AfterPause
    };
    let scenarios: Vec<(&str, Behaviour, Behaviour)> = vec![
        (
            "A/A 0.1%",
            Behaviour::failing(0.001),
            Behaviour::failing(0.001),
        ),
        ("A/A 1%", Behaviour::failing(0.01), Behaviour::failing(0.01)),
        ("A/A 5%", Behaviour::failing(0.05), Behaviour::failing(0.05)),
        ("hard", Behaviour::failing(0.01), Behaviour::failing(1.0)),
        ("1->10%", Behaviour::failing(0.01), Behaviour::failing(0.10)),
        ("1->3%", Behaviour::failing(0.01), Behaviour::failing(0.03)),
        (
            "+50ms",
            Behaviour::failing(0.01),
            Behaviour {
                error_rate: 0.01,
                latency: Latency::BASELINE.shifted(50.0),
            },
        ),
    ];
    let only = std::env::var("ONLY").unwrap_or_default();
    for (name, stable, canary) in scenarios {
        if !only.is_empty() && !only.split(',').any(|o| name.contains(o)) {
            continue;
        }
        let mut sc = Scenario::standard(stable, canary);
        sc.gate = gate;
        let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = env("EA") {
            sc.settings.errors.absolute = v;
        }
        if let Some(v) = env("ER") {
            sc.settings.errors.relative = v;
        }
        if let Some(v) = env("LA") {
            sc.settings.latency.absolute = v;
        }
        if let Some(v) = env("LR") {
            sc.settings.latency.relative = v;
        }
        if let Some(v) = env("SHARE") {
            sc.settings.error_share = v;
        }
        if let Some(v) = env("BETA") {
            sc.settings.success_risk = v;
        }
        if let Some(v) = env("PAUSE") {
            for s in &mut sc.steps {
                s.pause_ms = v as u64;
            }
        }
        let t = std::time::Instant::now();
        let outcomes: Vec<Outcome> = (0..runs).map(|seed| run(&sc, seed)).collect();
        let s = Summary::of(&outcomes);
        let med = |f: &dyn Fn(&Outcome) -> Option<u64>| {
            let mut v: Vec<u64> = outcomes.iter().filter_map(|o| f(o)).collect();
            v.sort();
            format!(
                "{}/{} med {}",
                v.len(),
                outcomes.len(),
                v.get(v.len() / 2).map_or(0, |x| x / 1000)
            )
        };
        println!(
            "   errors success {} latency success {}",
            med(&|o| o.errors_success_ms),
            med(&|o| o.latency_success_ms)
        );
        let (rate, (lo, hi)) = s.rollback_rate();
        let q = |x: Option<u64>| x.map_or("-".to_string(), |v| format!("{:.0}", v as f64 / 1000.0));
        println!(
            "{name:10} w3 {:.3} w10 {:.3} w30 {:.3} w75 {:.3} rb {:.4} [{:.4},{:.4}] err {} lat {} | p50 {} p95 {} p99 {} | succ p50 {} p95 {} | prom {} stall {} | {:.1}s",
            s.rolled_back_within(3000), s.rolled_back_within(10000), s.rolled_back_within(30000), s.rolled_back_within(75000),
            rate, lo, hi, s.failed_on_errors, s.failed_on_latency,
            q(s.rollback_quantile(0.5)), q(s.rollback_quantile(0.95)), q(s.rollback_quantile(0.99)),
            q(s.success_quantile(0.5)), q(s.success_quantile(0.95)), s.promoted, s.stalled,
            t.elapsed().as_secs_f64()
        );
    }
}
