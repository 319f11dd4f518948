//! The judge's evidence survives a restart: it is its own saved state.

mod support;

use canary_judge::{Judge, JudgeSettings, Verdict};
use support::{counters, timed};

fn busy_judge() -> Judge {
    let mut judge = Judge::new(JudgeSettings::default()).expect("valid");
    judge
        .observe(&counters((1_800, 18), (200, 9)))
        .expect("valid");
    judge
        .observe(&timed([300, 500, 150, 40, 10], [30, 50, 15, 4, 1]))
        .expect("valid");
    judge.observe(&counters((900, 9), (100, 2))).expect("valid");
    judge
}

#[test]
fn state_round_trips_through_json() {
    let judge = busy_judge();
    let saved = serde_json::to_string_pretty(&judge).expect("serialises");
    let restored: Judge = serde_json::from_str(&saved).expect("deserialises");
    assert_eq!(restored, judge);
    assert_eq!(restored.assess(), judge.assess());
    assert_eq!(restored.verdicts(), judge.verdicts());
    assert_eq!(restored.assess().looks, 3);
    // And it goes on exactly as the original would.
    let (mut a, mut b) = (judge, restored);
    for judge in [&mut a, &mut b] {
        judge
            .observe(&counters((9_000, 90), (1_000, 300)))
            .expect("valid");
    }
    assert_eq!(a, b);
    assert_eq!(a.assess().verdict, Verdict::Failed);
}

#[test]
fn state_that_does_not_add_up_is_refused() {
    let saved = serde_json::to_value(busy_judge()).expect("serialises");

    let mut short = saved.clone();
    short["canary"]["atOrBelow"] = serde_json::json!([1, 2]);
    let error = serde_json::from_value::<Judge>(short).expect_err("refused");
    assert!(error.to_string().contains("judge state"), "{error}");

    let mut bad_alpha = saved.clone();
    bad_alpha["settings"]["alpha"] = serde_json::json!(2.0);
    let error = serde_json::from_value::<Judge>(bad_alpha).expect_err("refused");
    assert!(error.to_string().contains("alpha"), "{error}");

    let mut unknown = saved;
    unknown["surprise"] = serde_json::json!(1);
    assert!(serde_json::from_value::<Judge>(unknown).is_err());
}

#[test]
fn settings_default_when_left_out() {
    let settings: JudgeSettings = serde_json::from_str(r#"{"alpha": 0.02}"#).expect("valid");
    assert_eq!(settings.alpha, 0.02);
    assert_eq!(settings.errors, JudgeSettings::default().errors);
    assert!(serde_json::from_str::<JudgeSettings>(r#"{"alfa": 0.02}"#).is_err());
}
