//! A deterministic mutator: byte flips, insertions, deletions, repeats,
//! splices of another corpus input and insertions of tokens the parsers
//! care about. Seeded, so a run can be repeated exactly.

/// Tokens worth inserting: syntax of the formats under test and values at
/// the edges of what they accept.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"\"",
    b"\n",
    b"\n  ",
    b"- ",
    b"&a ",
    b"*a",
    b"---\n",
    b"!!str ",
    b"? ",
    b"|\n",
    b">\n",
    b"#",
    b"'",
    b"\\u0000",
    b"\\ud800",
    b"null",
    b"true",
    b"NaN",
    b"-1",
    b"0",
    b"1e308",
    b"-1e308",
    b"18446744073709551615",
    b"9007199254740993",
    b"4294967296",
    b"100.001",
    b"0.0001",
    b"1/0",
    b"result",
    b"result[0]",
    b"len(result)",
    b" && ",
    b" || ",
    b" ?? ",
    b"\xff\xfe",
    b"\xc3\x28",
    b"\"canary_weight\":",
    b"\"routes\":",
    b"\"splits\":",
    b"\"stats\":",
    b"\"histograms\":",
    b"\"buckets\":",
    b"\"cumulative\":",
    b"\"upper_bound\":",
    b"\"resultType\":",
    b"\"vector\"",
    b"\"matrix\"",
    b"\"scalar\"",
    b"setWeight: ",
    b"pause: {}",
    b"analysis:",
    b"templateName: ",
    b"interval: ",
    b"count: ",
    b"$..*",
    b"$[*]",
    b"[?(@.a)]",
    b"wasmcustom.canary.route.",
    b".version.",
    b".rq_total",
];

/// SplitMix64: small, fast, good enough to drive mutations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// Makes inputs from a corpus.
#[derive(Debug)]
pub struct Mutator {
    rng: Rng,
    /// Longest input produced.
    max_len: usize,
}

impl Mutator {
    /// A mutator seeded with `seed`, producing inputs of at most `max_len`
    /// bytes.
    pub fn new(seed: u64, max_len: usize) -> Mutator {
        Mutator {
            rng: Rng::new(seed),
            max_len,
        }
    }

    /// A new input: one corpus entry changed by one to eight mutations.
    pub fn next(&mut self, corpus: &[Vec<u8>]) -> Vec<u8> {
        let mut input = match corpus.len() {
            0 => Vec::new(),
            n => corpus[self.rng.below(n)].clone(),
        };
        let rounds = 1 + self.rng.below(8);
        for _ in 0..rounds {
            self.mutate_once(&mut input, corpus);
        }
        input.truncate(self.max_len);
        input
    }

    fn mutate_once(&mut self, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        let len = input.len();
        match self.rng.below(8) {
            0 if len > 0 => {
                let at = self.rng.below(len);
                input[at] ^= 1 << self.rng.below(8);
            }
            1 if len > 0 => {
                let at = self.rng.below(len);
                input[at] = self.rng.next_u64() as u8;
            }
            2 if len > 0 => {
                let at = self.rng.below(len);
                let n = 1 + self.rng.below(16.min(len - at));
                input.drain(at..at + n);
            }
            3 if len > 0 => {
                // Repeat a chunk: grows nesting and lists.
                let at = self.rng.below(len);
                let n = 1 + self.rng.below(64.min(len - at));
                let chunk = input[at..at + n].to_vec();
                let times = 1 + self.rng.below(8);
                for _ in 0..times {
                    input.splice(at..at, chunk.iter().copied());
                }
            }
            4 if !corpus.is_empty() => {
                // Splice in part of another input.
                let other = &corpus[self.rng.below(corpus.len())];
                if !other.is_empty() {
                    let from = self.rng.below(other.len());
                    let n = 1 + self.rng.below(128.min(other.len() - from));
                    let at = self.rng.below(len + 1);
                    input.splice(at..at, other[from..from + n].iter().copied());
                }
            }
            5 if len > 0 => {
                // Replace a run of digits or letters with a token.
                let at = self.rng.below(len);
                let end = input[at..]
                    .iter()
                    .position(|b| !b.is_ascii_alphanumeric())
                    .map_or(len, |p| at + p);
                let token = TOKENS[self.rng.below(TOKENS.len())];
                input.splice(at..end, token.iter().copied());
            }
            _ => {
                let token = TOKENS[self.rng.below(TOKENS.len())];
                let at = self.rng.below(len + 1);
                input.splice(at..at, token.iter().copied());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_inputs() {
        let corpus = vec![b"{\"a\": [1, 2, 3]}".to_vec(), b"a: 1\nb: [x]\n".to_vec()];
        let mut a = Mutator::new(7, 4096);
        let mut b = Mutator::new(7, 4096);
        for _ in 0..1000 {
            assert_eq!(a.next(&corpus), b.next(&corpus));
        }
    }

    #[test]
    fn inputs_stay_within_the_length_limit() {
        let corpus = vec![vec![b'x'; 100]];
        let mut m = Mutator::new(1, 256);
        for _ in 0..2000 {
            assert!(m.next(&corpus).len() <= 256);
        }
    }
}
