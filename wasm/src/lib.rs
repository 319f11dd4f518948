//! The canary filter: a proxy-wasm HTTP filter that splits traffic between
//! a stable and a canary version.
//!
//! Per request it finds the route entry for the request's host and path,
//! chooses a version (override header, sticky key, or random by weight),
//! sets the routing header to that version's name so Envoy's route sends
//! the request to the right cluster, and records per-version stats. All
//! decisions live in `canary-config` as plain Rust; this crate is the thin
//! layer between them and the host.

mod host;
mod metrics;
mod request;
mod root;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_context_id| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(root::CanaryRoot::default())
    });
}}
