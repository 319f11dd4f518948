//! The crate against a fake API server on loopback: the exact requests it
//! sends and what it makes of the answers.

mod api_errors;
mod cpu_ratio;
mod fake;
mod plugin_push;
mod ready_ratio;
mod support;
