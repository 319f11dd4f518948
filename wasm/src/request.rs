//! One HTTP request: choose a version when the request headers arrive, mark
//! the request with it, optionally name it in the response, and record the
//! outcome when the stream ends. Nothing here can panic: every hostcall
//! answer is checked, and a request the filter cannot handle passes
//! untouched (and therefore reaches stable).

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use canary_config::stats_names::Metric;
use canary_config::weight::BUCKETS;
use canary_config::{choose, Version};

use crate::host::{self, HeaderMap};
use crate::root::ActiveConfig;

/// Serialised property path of the response status (`response.code`).
const RESPONSE_CODE: &[u8] = b"response\0code";

/// What the filter decided for a request, kept until the stream ends.
#[derive(Debug, Clone, Copy)]
struct Routed {
    route: usize,
    version: Version,
    started_nanos: Option<u64>,
}

/// The per-request context.
pub struct CanaryRequest {
    active: Option<Rc<ActiveConfig>>,
    routed: Option<Routed>,
}

impl CanaryRequest {
    pub fn new(active: Option<Rc<ActiveConfig>>) -> CanaryRequest {
        CanaryRequest {
            active,
            routed: None,
        }
    }

    fn route_request(&mut self) {
        let Some(active) = self.active.as_deref() else {
            return;
        };
        let config = &active.config;
        let Some(authority) = host::header_text(HeaderMap::RequestHeaders, ":authority") else {
            return;
        };
        let path = if config.needs_path {
            host::header_text(HeaderMap::RequestHeaders, ":path").unwrap_or_default()
        } else {
            String::new()
        };
        let Some((index, route)) = config.find_route(&authority, &path) else {
            return;
        };

        let decision = choose(
            route,
            |name| host::header_text(HeaderMap::RequestHeaders, name),
            || fastrand::u16(..BUCKETS),
        );
        if let Some(rule) = &route.override_rule {
            if let Some((secret_header, _)) = &rule.secret {
                // The secret never travels upstream.
                host::remove_header(HeaderMap::RequestHeaders, secret_header);
            }
        }
        // If the host refuses the mark, the request goes to stable: count it
        // there.
        let marked = host::set_header(
            HeaderMap::RequestHeaders,
            &config.routing_header,
            route.version_name(decision.version),
        );
        let version = if marked {
            decision.version
        } else {
            Version::Stable
        };
        self.routed = Some(Routed {
            route: index,
            version,
            started_nanos: host::now_nanos(),
        });
        active.metrics.increment(index, version, Metric::Requests);
    }
}

impl Context for CanaryRequest {}

impl HttpContext for CanaryRequest {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.route_request();
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let (Some(active), Some(routed)) = (self.active.as_deref(), self.routed) {
            if let Some(header) = &active.config.response_header {
                if let Some(route) = active.config.routes.get(routed.route) {
                    host::set_header(
                        HeaderMap::ResponseHeaders,
                        header,
                        route.version_name(routed.version),
                    );
                }
            }
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let (Some(active), Some(routed)) = (self.active.as_deref(), self.routed) else {
            return;
        };
        let metrics = &active.metrics;
        let status = host::property_i64(RESPONSE_CODE)
            .and_then(|code| u32::try_from(code).ok())
            .unwrap_or(0);
        if let Some(class) = Metric::for_status(status) {
            metrics.increment(routed.route, routed.version, class);
        }
        if status == 0 || status >= 500 {
            metrics.increment(routed.route, routed.version, Metric::Errors);
        }
        if let (Some(start), Some(end)) = (routed.started_nanos, host::now_nanos()) {
            let micros = end.saturating_sub(start) / 1_000;
            metrics.record(routed.route, routed.version, Metric::LatencyMicros, micros);
        }
    }
}
