//! What one client may hold of the controller: connections, time to send
//! headers, idle time, body size, and how long a command may wait.
//!
//! The connection cap keeps file descriptors in reserve: at most half the
//! process's open-files limit (less a margin) goes to API connections, so
//! a flood of idle connections cannot starve a state save, a push or a
//! measurement of descriptors.

use std::time::Duration;

/// The API's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; more wait in the listen queue.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, and the longest an
    /// idle keep-alive connection is kept (also the TLS handshake's
    /// limit).
    pub header_timeout: Duration,
    /// Longest a request body may be (only sign-in reads one).
    pub max_body: usize,
    /// A command not taken by the controller within this time is dropped,
    /// not carried out late.
    pub command_deadline: Duration,
    /// How long the API waits for the answer to a command it handed over
    /// (a push can take a while) before telling the client to look at the
    /// status.
    pub answer_wait: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: connection_budget(open_files_limit()),
            header_timeout: Duration::from_secs(10),
            max_body: 16 * 1024,
            command_deadline: Duration::from_secs(10),
            answer_wait: Duration::from_secs(30),
        }
    }
}

/// Connections allowed under an open-files limit of `limit`: half of it,
/// less 32 for everything else, between 4 and 512.
pub fn connection_budget(limit: Option<u64>) -> usize {
    match limit {
        Some(limit) => usize::try_from((limit / 2).saturating_sub(32))
            .unwrap_or(usize::MAX)
            .clamp(4, 512),
        None => 256,
    }
}

/// The process's soft open-files limit, from `/proc/self/limits`
/// (`None` where that cannot be read).
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files(&text)
}

fn parse_open_files(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    soft.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_leave_half_the_descriptors_in_reserve() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_open_files(limits), Some(1024));
        assert_eq!(connection_budget(Some(1024)), 480);
        assert_eq!(connection_budget(Some(64)), 4);
        assert_eq!(connection_budget(Some(1 << 20)), 512);
        assert_eq!(connection_budget(None), 256);
    }
}
