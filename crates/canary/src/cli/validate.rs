//! `canary validate FILE`: checks a rollout file, the templates in it and
//! in its `templateFiles`, and every analysis they make up. Prints each
//! problem as `file:line: field.path: reason` and exits 1 if there is any.

use std::path::PathBuf;
use std::process::ExitCode;

use canary_rollout::{validate_rollout, Step};

/// Arguments of `canary validate`.
#[derive(Debug, clap::Args)]
pub struct Validate {
    /// The rollout file (YAML: a CanaryRollout, optionally followed by
    /// AnalysisTemplate / ClusterAnalysisTemplate documents).
    pub file: PathBuf,
}

impl Validate {
    /// Runs the check.
    pub fn run(&self) -> ExitCode {
        match validate_rollout(&self.file) {
            Ok(loaded) => {
                let spec = &loaded.spec;
                let analyses = spec
                    .steps
                    .iter()
                    .filter(|s| matches!(s, Step::Analysis(_)))
                    .count();
                crate::cli::out(&format!(
                    "{}: ok: rollout {} ({} → {}), {}, {}{}, {}\n",
                    self.file.display(),
                    spec.name,
                    spec.stable_version,
                    spec.canary_version,
                    plural(spec.steps.len(), "step"),
                    plural(analyses, "step analysis"),
                    if spec.background.is_some() {
                        " and a background analysis"
                    } else {
                        ""
                    },
                    plural(loaded.templates.len(), "template")
                ));
                ExitCode::SUCCESS
            }
            Err(err) => {
                for problem in &err.0 {
                    eprintln!("{problem}");
                }
                eprintln!("{} found", plural(err.0.len(), "problem"));
                ExitCode::FAILURE
            }
        }
    }
}

/// "1 step", "2 steps", "2 step analyses".
fn plural(n: usize, noun: &str) -> String {
    match (n, noun.strip_suffix("analysis")) {
        (1, _) => format!("1 {noun}"),
        (_, Some(stem)) => format!("{n} {stem}analyses"),
        _ => format!("{n} {noun}s"),
    }
}
