//! The rollout a user writes (`kind: CanaryRollout`): which route entries
//! and versions it drives, its steps, its background analysis and its
//! progress deadline. The same shape serves as a file and as the future
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
        })
    }
}
