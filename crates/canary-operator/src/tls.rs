//! The process's TLS crypto provider.
//!
//! kube's client and reqwest (the Prometheus and web providers) both use
//! rustls, with different crypto providers enabled (ring for kube,
//! aws-lc-rs for reqwest). With two enabled, rustls cannot pick one by
//! itself and building kube's TLS configuration panics. The operator
//! therefore names ring, the provider kube is built with, before it builds
//! any client (`canary_kube`'s client constructors do it too).

/// Makes ring the process-wide rustls provider; a provider already
/// installed (by an earlier call, or by the embedding program) is kept.
pub fn install_crypto_provider() {
    canary_kube::install_crypto_provider();
}
