//! The stable and canary Deployments: what the API reports about them
//! ([`view`]), what to do next given that ([`plan`], pure), and the calls
//! that do it ([`apply`]).
//!
//! The plan encodes the seed flow's workload rules, from where the
//! driver's report says the rollout is:
//!
//! - **Rollback**: once the proxies show weight 0, the canary Deployment is
//!   scaled to zero (its replica count is remembered in an annotation);
//!   stable is not touched.
//! - **Promotion** (`copyTemplate`): once the proxies show the promotion,
//!   the canary's pod template is copied to the stable Deployment, and
//!   only once stable reports every replica updated and ready does all
//!   traffic return to it; then the canary is scaled down. (`swapNames`:
//!   the driver's promoted split names the canary as stable; no Deployment
//!   changes.)
//! - **Before a rollout, and after a retry**: a canary scaled to zero is
//!   scaled back up. That no split reaching the canary is pushed while its
//!   Deployment is not ready is the router's gate
//!   (`crate::reconcile::Gate`).

pub mod apply;
pub mod plan;
pub mod view;

pub use apply::Workloads;
pub use plan::{plan, Plan, PlanInput, Stage, WorkloadAction};
pub use view::{WorkloadView, SCALED_DOWN_FROM};
