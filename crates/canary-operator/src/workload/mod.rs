//! The stable and canary Deployments: what the API reports about them
//! ([`view`]), what to do next given that ([`plan`], pure), and the calls
//! that do it ([`apply`]).
//!
//! The plan encodes the seed flow's workload rules:
//!
//! - **Rollback**: canary weight 0 first, then the canary Deployment is
//!   scaled to zero (its replica count is remembered in an annotation);
//!   stable is not touched.
//! - **Promotion** (`copyTemplate`): the canary's pod template is copied
//!   to the stable Deployment, and only once stable reports every replica
//!   updated and ready does all traffic return to it; then the canary is
//!   scaled down. (`swapNames`: the canary's name becomes stable in the
//!   filter configuration once the canary is ready; no Deployment
//!   changes.)
//! - **Never send traffic to a version whose pods are not ready**: a split
//!   that raises the canary's share waits until the canary Deployment is
//!   fully ready. Moving traffic back to stable (a rollback, a restart for
//!   a new canary version) is never held.

pub mod apply;
pub mod plan;
pub mod view;

pub use apply::Workloads;
pub use plan::{plan, Plan, PlanInput, Stage, WorkloadAction};
pub use view::{WorkloadView, SCALED_DOWN_FROM};
