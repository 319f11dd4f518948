//! Looks built from plain numbers.

#![allow(dead_code)]

use canary_judge::{Buckets, Increment, Look};

/// Bounds used by the tests, µs: 10, 25, 50, 100 ms.
pub const BOUNDS: [f64; 4] = [10_000.0, 25_000.0, 50_000.0, 100_000.0];

/// A look with counters only.
pub fn counters(stable: (u64, u64), canary: (u64, u64)) -> Look {
    Look {
        stable: Increment {
            requests: stable.0,
            errors: stable.1,
            latency: None,
        },
        canary: Increment {
            requests: canary.0,
            errors: canary.1,
            latency: None,
        },
    }
}

/// Histogram increment over [`BOUNDS`] from per-bucket counts (the last
/// one above every bound).
pub fn buckets(per_bucket: [u64; 5]) -> Buckets {
    let mut running = 0;
    let cumulative = per_bucket[..4]
        .iter()
        .map(|n| {
            running += n;
            running
        })
        .collect();
    Buckets {
        bounds: BOUNDS.to_vec(),
        cumulative,
        count: per_bucket.iter().sum(),
    }
}

/// A look with both versions' histograms.
pub fn timed(stable: [u64; 5], canary: [u64; 5]) -> Look {
    let mut look = counters((0, 0), (0, 0));
    look.stable.latency = Some(buckets(stable));
    look.canary.latency = Some(buckets(canary));
    look
}
