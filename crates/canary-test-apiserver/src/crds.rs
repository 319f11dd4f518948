//! CustomResourceDefinitions of the other projects' kinds the operator
//! reads and writes, reduced to what this server uses (names, scope, the
//! status subresource, which fields are schemaless). Load them with
//! [`crate::TestApiServer::load_yaml`]; the canary CRD itself is
//! `manifests/kubernetes/crd/crd.yaml`.

/// Istio's `WasmPlugin` and `TrafficExtension`: `pluginConfig` is
/// schemaless (`x-kubernetes-preserve-unknown-fields`).
pub const ISTIO_EXTENSIONS: &str = include_str!("../crds/istio-extensions.yaml");

/// Argo Rollouts' `AnalysisTemplate` and `ClusterAnalysisTemplate`, with a
/// schemaless spec.
pub const ARGO_ANALYSIS: &str = include_str!("../crds/argo-analysis.yaml");

/// Istio's VirtualService, DestinationRule, Gateway and EnvoyFilter, with a
/// schemaless spec.
pub const ISTIO_NETWORKING: &str = include_str!("../crds/istio-networking.yaml");

/// Gateway API's Gateway and HTTPRoute, with a schemaless spec.
pub const GATEWAY_API: &str = include_str!("../crds/gateway-api.yaml");
