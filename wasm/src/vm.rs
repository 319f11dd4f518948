//! Everything the filter keeps in one VM (one worker thread): the
//! configuration of each root context, the state of each request in
//! flight, and counter increments not yet handed to the host.
//!
//! Requests live in a map keyed by context id with an identity hash (the
//! host hands out ids; no boxed context objects). Counters are added up
//! here and handed to the host once per tick (every
//! [`crate::metrics::FLUSH_MILLIS`]), one hostcall per counter that moved,
//! instead of one hostcall per count on the request path.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

use canary_config::Version;

use crate::metrics::Counters;
use crate::root::ActiveConfig;

/// Context ids are already unique small integers: hash them as they are.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n);
    }
}

/// The filter's decision for a request, kept until the stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed {
    /// Index of the route entry.
    pub route: usize,
    /// The version it was sent to.
    pub version: Version,
    /// Host clock when the request headers arrived, if the host told.
    pub started_nanos: Option<u64>,
}

/// One request in flight.
#[derive(Debug, Clone)]
pub struct Request {
    /// The configuration in force when the request began (`None`: the
    /// root context has no accepted configuration; the request passes).
    pub active: Option<Rc<ActiveConfig>>,
    /// What the filter decided, once it has.
    pub routed: Option<Routed>,
}

/// The VM's state.
#[derive(Default)]
pub struct Vm {
    /// Configuration per root context id.
    pub roots: Vec<(u32, Option<Rc<ActiveConfig>>)>,
    /// Requests in flight by context id.
    pub requests: HashMap<u32, Request, BuildHasherDefault<IdHasher>>,
    /// Metric ids and counts not yet handed to the host.
    pub counters: Counters,
}

thread_local! {
    static VM: RefCell<Vm> = RefCell::new(Vm::default());
}

/// Runs `f` on the VM state; `None` if it is already in use (the host
/// never re-enters the filter, so this does not happen, but a `RefCell`
/// conflict must not trap the VM).
pub fn with<R>(f: impl FnOnce(&mut Vm) -> R) -> Option<R> {
    VM.with(|vm| vm.try_borrow_mut().ok().map(|mut vm| f(&mut vm)))
}

/// A context was created: a root context (`parent` 0) or a request.
pub fn context_created(context: u32, parent: u32) {
    with(|vm| {
        if parent == 0 {
            if !vm.roots.iter().any(|(id, _)| *id == context) {
                vm.roots.push((context, None));
            }
        } else {
            let active = vm
                .roots
                .iter()
                .find(|(id, _)| *id == parent)
                .and_then(|(_, active)| active.clone());
            vm.requests.insert(
                context,
                Request {
                    active,
                    routed: None,
                },
            );
        }
    });
}

/// A context is gone: forget it. A root context's configuration gives up
/// its gauges.
pub fn context_deleted(context: u32) {
    with(|vm| {
        if vm.requests.remove(&context).is_none() {
            vm.roots.retain(|(id, _)| *id != context);
            vm.retire_gauges();
        }
    });
}

impl Vm {
    /// Sets back to 0 the gauges no configuration in force claims.
    pub fn retire_gauges(&mut self) {
        let roots = &self.roots;
        self.counters.retire(|slot| {
            roots
                .iter()
                .filter_map(|(_, active)| active.as_ref())
                .any(|active| active.gauges.contains(&slot))
        });
    }
}

/// The timer: hands the counted increments to the host, and learns of
/// guard trips other workers made (so this VM's gauges and routing agree
/// within one period even without canary-bound requests here).
pub fn on_tick() {
    let actives: Vec<Rc<ActiveConfig>> = with(|vm| {
        vm.counters.flush();
        vm.roots
            .iter()
            .filter_map(|(_, active)| active.clone())
            .collect()
    })
    .unwrap_or_default();
    for active in actives {
        for (index, guard) in active.guards.iter().enumerate() {
            if let Some(guard) = guard {
                if let (true, true) = guard.check() {
                    with(|vm| {
                        active
                            .metrics
                            .publish_guard(&active.config, index, true, &mut vm.counters)
                    });
                }
            }
        }
    }
}
