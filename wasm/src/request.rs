//! One HTTP request: choose a version when the request headers arrive, mark
//! the request with it, optionally name it in the response, and record the
//! outcome when the stream ends. Nothing here can panic: every hostcall
//! answer is checked, and a request the filter cannot handle passes
//! untouched (and therefore reaches stable).

use canary_config::guard::trip_message;
use canary_config::stats_names::{is_failure, Metric};
use canary_config::weight::BUCKETS;
use canary_config::{choose, Version};

use crate::guard::Recorded;
use crate::host::{self, HeaderMap, LogLevel};
use crate::root::ActiveConfig;
use crate::vm::{self, Routed};

/// Serialised property path of the response status (`response.code`).
const RESPONSE_CODE: &[u8] = b"response\0code";

/// `proxy_on_request_headers`.
pub fn on_request_headers(context: u32) {
    let active = vm::with(|vm| vm.requests.get(&context).and_then(|r| r.active.clone())).flatten();
    let Some(active) = active else {
        return;
    };
    let config = &active.config;
    let authority = if active.needs_authority {
        match host::header_text(HeaderMap::RequestHeaders, ":authority") {
            Some(authority) => authority,
            None => return,
        }
    } else {
        String::new()
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
        |name| host::header(HeaderMap::RequestHeaders, name),
        || fastrand::u16(..BUCKETS),
    );
    if let Some(secret_header) = &route.secret_header {
        // The secret never travels upstream, override on or off.
        host::remove_header(HeaderMap::RequestHeaders, secret_header);
    }
    let mut chosen = decision.version;
    if chosen == Version::Canary {
        if let Some(guard) = active.guard(index) {
            // A tripped guard sends every choice (weighted, sticky,
            // override) to stable.
            let (tripped, learned) = guard.check();
            if tripped {
                chosen = Version::Stable;
            }
            if learned {
                vm::with(|vm| {
                    active
                        .metrics
                        .publish_guard(config, index, true, &mut vm.counters)
                });
            }
        }
    }
    // A request for the default route's version needs no mark (Envoy has
    // already removed any client-sent routing header). If the host refuses
    // a mark, the request goes to stable: count it there.
    let marked = !route.needs_mark(chosen)
        || host::set_header(
            HeaderMap::RequestHeaders,
            &config.routing_header,
            route.version_name(chosen),
        );
    let version = if marked { chosen } else { Version::Stable };
    let routed = Routed {
        route: index,
        version,
        started_nanos: host::now_nanos(),
    };
    vm::with(|vm| {
        vm.counters
            .count(active.metrics.slot(index, version, Metric::Requests));
        if let Some(request) = vm.requests.get_mut(&context) {
            request.routed = Some(routed);
        }
    });
}

/// `proxy_on_response_headers`: names the serving version when configured.
pub fn on_response_headers(context: u32) {
    let named = vm::with(|vm| {
        let request = vm.requests.get(&context)?;
        let active = request.active.as_ref()?;
        let header = active.config.response_header.as_ref()?;
        let routed = request.routed?;
        let route = active.config.routes.get(routed.route)?;
        Some((
            header.clone(),
            route.version_name(routed.version).to_owned(),
        ))
    })
    .flatten();
    if let Some((header, version)) = named {
        host::set_header(HeaderMap::ResponseHeaders, &header, &version);
    }
}

/// `proxy_on_log`: the stream ended; count it and record its latency.
pub fn on_log(context: u32) {
    let routed = vm::with(|vm| {
        let request = vm.requests.get(&context)?;
        Some((request.active.clone()?, request.routed?))
    })
    .flatten();
    let Some((active, routed)) = routed else {
        return;
    };
    // The final status, including Envoy's own local replies; 0 when the
    // stream ended without a response. (Cheaper than reading `:status` in
    // the response headers callback, measured.)
    let status = host::property_i64(RESPONSE_CODE)
        .and_then(|code| u32::try_from(code).ok())
        .unwrap_or(0);
    let latency_micros = match (routed.started_nanos, host::now_nanos()) {
        (Some(start), Some(end)) => Some(end.saturating_sub(start) / 1_000),
        _ => None,
    };
    let slot = |metric| active.metrics.slot(routed.route, routed.version, metric);
    let failed = is_failure(status);
    vm::with(|vm| {
        if let Some(class) = Metric::for_status(status) {
            vm.counters.count(slot(class));
        }
        if failed {
            vm.counters.count(slot(Metric::Errors));
        }
        if let Some(micros) = latency_micros {
            vm.counters.record(slot(Metric::LatencyMicros), micros);
        }
    });
    guard_outcome(&active, routed, failed);
}

/// Adds a request's outcome to its route entry's guard; on a trip, sets
/// the gauges, counts it and logs the evidence (once per Envoy: only the
/// worker whose outcome tripped it).
fn guard_outcome(active: &ActiveConfig, routed: Routed, failed: bool) {
    let Some(guard) = active.guard(routed.route) else {
        return;
    };
    let Some(route) = active.config.routes.get(routed.route) else {
        return;
    };
    let Some(rule) = route.guard.as_ref() else {
        return;
    };
    let recorded = guard.record(rule, routed.version, failed);
    if recorded == Recorded::Nothing {
        return;
    }
    vm::with(|vm| {
        active
            .metrics
            .publish_guard(&active.config, routed.route, true, &mut vm.counters);
        if let Recorded::Tripped(_) = recorded {
            let slot = active
                .metrics
                .slot(routed.route, Version::Canary, Metric::GuardTrips);
            vm.counters.count(slot);
        }
    });
    if let Recorded::Tripped(evidence) = recorded {
        let canary = route.canary.as_deref().unwrap_or_default();
        let line = trip_message(
            &route.name,
            &route.stable,
            canary,
            route.generation,
            rule,
            &evidence,
        );
        host::log(LogLevel::Warn, &format!("canary: {line}"));
    }
}
