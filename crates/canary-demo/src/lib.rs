//! `canary demo`: a real canary rollout on one machine, worth watching.
//!
//! - [`scenario`]: the two scenarios, their timings, and the rollout they
//!   run (built from the seed flow).
//! - [`stage`]: starting and stopping everything: Envoy with the filter,
//!   the stable (`v1`) and canary (`v2`) upstreams, steady load, and the
//!   controller.
//! - [`view`]: the live terminal view, or plain progress lines.
//! - [`summary`]: the verdict and the numbers at the end (text or JSON).
//! - [`run`]: the whole run.

pub mod run;
pub mod scenario;
pub mod stage;
pub mod summary;
pub mod view;

pub use run::{run, DemoError, DemoOptions};
pub use scenario::Scenario;
pub use summary::Summary;
