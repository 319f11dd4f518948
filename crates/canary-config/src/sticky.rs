//! Sticky keys: a key (a header or cookie value) is hashed into one of
//! 10 000 buckets; buckets below the canary weight go to the canary.
//!
//! The hash is part of the product's contract: every proxy, every worker
//! and every release must put the same key in the same bucket, or clients
//! would flip between versions. It is FNV-1a (64-bit) over
//! `salt || 0xff || key`, finished with the SplitMix64 mixer so that keys
//! differing only in their last byte spread evenly, reduced modulo 10 000.
//! Do not change it.

use crate::weight::BUCKETS;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The bucket (0..10 000) a sticky key falls into, for a given salt.
pub fn bucket_of(salt: &[u8], key: &[u8]) -> u16 {
    let mut hash = FNV_OFFSET;
    for &byte in salt.iter().chain(std::iter::once(&0xff)).chain(key) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    // `% BUCKETS` is below 10 000, so it fits in u16.
    (mix(hash) % u64::from(BUCKETS)) as u16
}

/// SplitMix64's finaliser: spreads every input bit over the whole output.
const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Finds the value of cookie `name` in a `cookie` request header, without
/// allocating. Works on bytes: a value need not be UTF-8. Pairs are
/// separated by `;`, whitespace around them is ignored, the first pair with
/// that exact name wins, and surrounding double quotes are removed from the
/// value. An empty value counts as no cookie.
pub fn cookie_value<'a>(cookie_header: &'a [u8], name: &str) -> Option<&'a [u8]> {
    cookie_header.split(|&b| b == b';').find_map(|pair| {
        let equals = pair.iter().position(|&b| b == b'=')?;
        let (key, value) = (pair.get(..equals)?, pair.get(equals + 1..)?);
        if key.trim_ascii() != name.as_bytes() {
            return None;
        }
        let value = value.trim_ascii();
        let value = value
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(value);
        (!value.is_empty()).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weight::Weight;
    use proptest::prelude::*;

    #[test]
    fn the_hash_is_frozen() {
        // These values are the contract: changing the hash would move
        // clients between versions across a filter upgrade.
        assert_eq!(
            bucket_of(b"checkout", b"user-1"),
            bucket_of(b"checkout", b"user-1")
        );
        let frozen: Vec<u16> = ["user-1", "user-2", "alice", ""]
            .iter()
            .map(|k| bucket_of(b"checkout", k.as_bytes()))
            .collect();
        assert_eq!(frozen, FROZEN);
    }

    const FROZEN: [u16; 4] = [4_637, 9_082, 48, 8_383];

    #[test]
    fn salt_changes_the_bucket() {
        let same = (0..200)
            .filter(|i| {
                let key = format!("user-{i}");
                bucket_of(b"a", key.as_bytes()) == bucket_of(b"b", key.as_bytes())
            })
            .count();
        assert!(
            same < 5,
            "{same} of 200 keys kept their bucket across salts"
        );
    }

    #[test]
    fn finds_cookies() {
        let header: &[u8] = b"a=1; session=abc ; theme=\"dark\"; empty=";
        assert_eq!(cookie_value(header, "session"), Some(&b"abc"[..]));
        assert_eq!(cookie_value(header, "a"), Some(&b"1"[..]));
        assert_eq!(cookie_value(header, "theme"), Some(&b"dark"[..]));
        assert_eq!(cookie_value(header, "empty"), None);
        assert_eq!(cookie_value(header, "missing"), None);
        assert_eq!(cookie_value(header, "sess"), None);
        assert_eq!(cookie_value(b"", "a"), None);
        assert_eq!(cookie_value(b"novalue; a=2", "a"), Some(&b"2"[..]));
        assert_eq!(
            cookie_value(b"session=\xff\xfe; a=1", "session"),
            Some(&b"\xff\xfe"[..])
        );
    }

    proptest! {
        #[test]
        fn buckets_are_in_range(salt in ".*", key in ".*") {
            prop_assert!(bucket_of(salt.as_bytes(), key.as_bytes()) < BUCKETS);
        }

        #[test]
        fn canary_share_follows_the_weight(bp in 0u16..=10_000, seed in any::<u64>()) {
            let weight = Weight::from_basis_points(bp).unwrap();
            let n = 20_000u32;
            let canary = (0..n)
                .filter(|i| weight.admits(bucket_of(b"r", format!("{seed}-{i}").as_bytes())))
                .count() as f64;
            let p = f64::from(bp) / 10_000.0;
            let expected = p * f64::from(n);
            // Six standard deviations, plus one key of slack at the edges.
            let slack = 6.0 * (f64::from(n) * p * (1.0 - p)).sqrt() + 1.0;
            prop_assert!((canary - expected).abs() <= slack,
                "weight {bp} bp: {canary} canary of {n}, expected {expected}±{slack}");
        }

        #[test]
        fn raising_the_weight_never_moves_a_key_back(a in 0u16..=10_000, b in 0u16..=10_000, key in ".*") {
            let (low, high) = (a.min(b), a.max(b));
            let bucket = bucket_of(b"salt", key.as_bytes());
            let low = Weight::from_basis_points(low).unwrap();
            let high = Weight::from_basis_points(high).unwrap();
            prop_assert!(!low.admits(bucket) || high.admits(bucket));
        }

        #[test]
        fn cookie_parsing_never_panics(header in proptest::collection::vec(any::<u8>(), 0..64), name in "[a-z]{1,8}") {
            let _ = cookie_value(&header, &name);
        }
    }
}
