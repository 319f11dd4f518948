//! The rollout a user writes (`kind: CanaryRollout`): which route entries
//! and versions it drives, its steps, its background analysis and its
//! progress deadline. The same shape serves as a file and inside the
//! Kubernetes resource.
//!
//! Analyses appear first as references to templates ([`AnalysisRef`]),
//! as read from the document, then resolved into runnable
//! [`AnalysisSpec`]s once the templates are found.

use std::sync::Arc;
use std::time::Duration;

use canary_analysis::template::{MetricSelector, Retention};
use canary_analysis::{AnalysisSpec, Arg};
use canary_config::Weight;

/// The rollout's API version.
pub const API_VERSION: &str = "canary.dev/v1alpha1";
/// The rollout's kind.
pub const KIND: &str = "CanaryRollout";
/// Default `progressDeadline`: Argo's default `progressDeadlineSeconds`.
pub const DEFAULT_PROGRESS_DEADLINE: Duration = Duration::from_secs(600);

/// A rollout; `A` is how analyses are held ([`AnalysisRef`] when read,
/// [`AnalysisSpec`] when resolved).
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutSpec<A = Arc<AnalysisSpec>> {
    /// `metadata.name`.
    pub name: String,
    /// Names of the filter's route entries (`routes[].name`) it drives.
    pub routes: Vec<String>,
    /// The version serving traffic now.
    pub stable_version: String,
    /// The version being rolled out.
    pub canary_version: String,
    /// Steps, in order.
    pub steps: Vec<Step<A>>,
    /// Analysis running in the background from a step to the end.
    pub background: Option<BackgroundAnalysis<A>>,
    /// How long an analysis may go without enough data before the
    /// rollout is aborted.
    pub progress_deadline: Duration,
    /// How long the proxies may take to show a new split before the
    /// rollout is aborted (a rollback is then retried until seen); the
    /// controller's default for how it observes the proxies when unset.
    pub verify_deadline: Option<Duration>,
}

/// One step.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<A = Arc<AnalysisSpec>> {
    /// `setWeight: N`: send N% of requests to the canary.
    SetWeight(Weight),
    /// `pause: {}` (until a person resumes) or `pause: {duration: 30s}`.
    Pause(Option<Duration>),
    /// `analysis`: must pass before the next step.
    Analysis(A),
    /// `setHeaderRoute: {enabled: …}`: let the override header pick the
    /// canary (or stop it), weight unchanged.
    SetHeaderRoute(bool),
}

/// `spec.analysis`: background analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct BackgroundAnalysis<A = Arc<AnalysisSpec>> {
    /// Index of the step from which it runs.
    pub starting_step: usize,
    /// The analysis.
    pub analysis: A,
}

/// An analysis as a rollout names it: templates plus args.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisRef {
    /// Path in the document (`spec.steps[2].analysis`).
    pub path: String,
    /// Line of the reference.
    pub line: usize,
    /// The templates.
    pub templates: Vec<TemplateRef>,
    /// Args for them.
    pub args: Vec<Arg>,
    /// Extra dry-run metrics.
    pub dry_run: Vec<MetricSelector>,
    /// Extra retention settings.
    pub retention: Vec<Retention>,
}

/// `templates[]` of an analysis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRef {
    /// `templateName`.
    pub name: String,
    /// `clusterScope: true` for a ClusterAnalysisTemplate.
    pub cluster_scope: bool,
    /// Line of the name.
    pub line: usize,
    /// Path of the entry.
    pub path: String,
}

impl RolloutSpec {
    /// A digest of everything that decides where this rollout goes: its
    /// name, routes, versions, steps (weights, pauses, header routes, the
    /// templates and metrics of each analysis), background analysis and
    /// deadlines. A saved position records it; a position whose digest
    /// differs was made for another rollout and is not resumed as if it
    /// were this one. Template *contents* (queries, conditions) are not in
    /// it: as in Argo Rollouts, a run uses the templates as they were read.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        use std::fmt::Write as _;

        let mut text = String::new();
        let analysis = |text: &mut String, a: &AnalysisSpec| {
            let _ = write!(text, "templates={:?};metrics=", a.templates);
            for metric in &a.metrics {
                let _ = write!(text, "{}/{},", metric.name, metric.provider.name());
            }
            let _ = write!(text, ";dryRun={:?};retention={:?}", a.dry_run, a.retention);
        };
        let _ = write!(
            text,
            "name={:?}\nroutes={:?}\nstable={:?}\ncanary={:?}\nprogressDeadline={}\nverifyDeadline={:?}\n",
            self.name,
            self.routes,
            self.stable_version,
            self.canary_version,
            self.progress_deadline.as_millis(),
            self.verify_deadline.map(|d| d.as_millis()),
        );
        for (n, step) in self.steps.iter().enumerate() {
            let _ = write!(text, "step{n}=");
            match step {
                Step::SetWeight(w) => {
                    let _ = write!(text, "setWeight {}", w.basis_points());
                }
                Step::Pause(d) => {
                    let _ = write!(text, "pause {:?}", d.map(|d| d.as_millis()));
                }
                Step::SetHeaderRoute(on) => {
                    let _ = write!(text, "setHeaderRoute {on}");
                }
                Step::Analysis(a) => {
                    text.push_str("analysis ");
                    analysis(&mut text, a);
                }
            }
            text.push('\n');
        }
        if let Some(bg) = &self.background {
            let _ = write!(text, "background from {} ", bg.starting_step);
            analysis(&mut text, &bg.analysis);
        }
        let digest = Sha256::digest(text.as_bytes());
        let mut hex = String::with_capacity(16);
        for byte in &digest[..8] {
            let _ = write!(hex, "{byte:02x}");
        }
        hex
    }
}

impl<A> RolloutSpec<A> {
    /// The same rollout with each analysis turned by `resolve`; `None` if
    /// any analysis could not be resolved (every one is still tried).
    pub fn map_analyses<B>(
        self,
        mut resolve: impl FnMut(A) -> Option<B>,
    ) -> Option<RolloutSpec<B>> {
        let mut ok = true;
        let mut steps = Vec::with_capacity(self.steps.len());
        for step in self.steps {
            let step = match step {
                Step::SetWeight(w) => Some(Step::SetWeight(w)),
                Step::Pause(d) => Some(Step::Pause(d)),
                Step::SetHeaderRoute(on) => Some(Step::SetHeaderRoute(on)),
                Step::Analysis(a) => resolve(a).map(Step::Analysis),
            };
            match step {
                Some(step) => steps.push(step),
                None => ok = false,
            }
        }
        let background = match self.background {
            Some(bg) => match resolve(bg.analysis) {
                Some(analysis) => Some(BackgroundAnalysis {
                    starting_step: bg.starting_step,
                    analysis,
                }),
                None => {
                    ok = false;
                    None
                }
            },
            None => None,
        };
        ok.then_some(RolloutSpec {
            name: self.name,
            routes: self.routes,
            stable_version: self.stable_version,
            canary_version: self.canary_version,
            steps,
            background,
            progress_deadline: self.progress_deadline,
            verify_deadline: self.verify_deadline,
        })
    }
}
