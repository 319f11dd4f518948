//! Where measurements come from. Each provider turns a template's typed
//! query into a [`canary_analysis::MeasurementResult`]: a value (with the
//! number of samples it stands on, when known), an error, or not enough
//! data.

pub mod envoy;
pub mod http;
pub mod kubernetes;
pub mod prometheus;
pub mod web;
