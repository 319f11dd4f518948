//! The controller's Kubernetes edge.
//!
//! - Reading the pods of a version: the ready-pod ratio and the CPU usage
//!   ratio over a label selector ([`PodReader`]), each with the number of
//!   pods it stands on, or an explicit "no data" ([`RatioReading`]).
//! - Writing the split: server-side apply of `pluginConfig.splits.<route>`
//!   (nothing else) onto Istio's `WasmPlugin` or `TrafficExtension`
//!   ([`PluginPusher`]), validated before anything is sent; a kind the API
//!   server does not serve is a [`KindNotServed`].
//! - Building the client, from the environment or an explicit URL
//!   ([`client_from_environment`], [`client_for_url`]).
//!
//! The arithmetic (readiness, CPU sums, quantities) is plain functions over
//! k8s-openapi objects in [`readiness`], [`cpu`] and [`quantity`]; only
//! [`pod_reader`] and [`plugin_pusher`] talk to the API server. API
//! failures are [`ApiError`]s, typed by what an operator does about them.
//!
//! - [`client`]: client construction.
//! - [`api_error`]: API failures.
//! - [`reading`]: ratio or "no data".
//! - [`readiness`], [`cpu`], [`quantity`]: the pure arithmetic.
//! - [`pod_reader`]: the list calls behind the ratios.
//! - [`plugin_object`]: the Istio object and its apply patch.
//! - [`plugin_pusher`]: the apply call.
//! - [`served`]: whether the API server serves a kind at all.
//! - [`proxies`]: the pods a plugin object applies to
//!   ([`PodReader::proxies`]).
//! - `fake_apiserver` (feature `test-support`): a loopback fake API server
//!   that records requests, for tests.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod api_error;
pub mod client;
pub mod cpu;
#[cfg(feature = "test-support")]
pub mod fake_apiserver;
pub mod plugin_object;
pub mod plugin_pusher;
pub mod pod_reader;
pub mod proxies;
pub mod quantity;
pub mod readiness;
pub mod reading;
pub mod served;
#[cfg(test)]
mod test_pods;

pub use api_error::{ApiCall, ApiError, Verb};
pub use client::{client_for_url, client_from_environment, install_crypto_provider, ClientError};
pub use cpu::{CpuAccountingError, CpuUsage, PodMetrics};
pub use plugin_object::{PluginKind, PluginObject};
pub use plugin_pusher::{
    split_field_manager, AppliedConfig, PluginPusher, PushError, FIELD_MANAGER,
};
pub use pod_reader::{CpuReadError, PodReader, PodSelector, SelectorError};
pub use proxies::{proxy_pod, ProxiesError, ProxyPod, ProxyScope};
pub use quantity::QuantityError;
pub use readiness::PodReadiness;
pub use reading::{NoData, Ratio, RatioReading};
pub use served::{check_served, KindNotServed, ServedError};
