//! Fault injection: how a chaos test breaks a running node on purpose.
//!
//! A node started with `shoal start --fault-injection` (a hidden flag, for
//! tests only) answers three more requests on its HTTP endpoint
//! (`--http-addr`):
//!
//! * `POST /faults/cut?peers=2,3` — from now on this node's Raft messages
//!   and requests to nodes 2 and 3 are lost (`shoal_replication::faults`);
//!   `peers=` with no ids heals every link. Cuts are one-way; a chaos
//!   driver makes a symmetric partition by cutting both sides.
//! * `POST /faults/clock?offset_ms=-250` — this node's wall clock (the one
//!   its hybrid clock and its Raft timestamp floors read) runs 250 ms
//!   behind the system's; `0` puts it back. A jump is a change of offset.
//! * `POST /faults/disk?delay_ms=200` — every write to this node's store
//!   waits 200 ms first (a slow disk; `0` heals);
//!   `POST /faults/disk?fail=true` — every write fails from now on (a dead
//!   disk: the node stops replicating until restarted;
//!   `shoal_storage::disk_faults`).
//! * `GET /faults` — the faults in force, as JSON.
//!
//! Without the flag, `/faults` requests are answered 404 and the node's
//! links, clock and disk are the plain ones: a production node cannot be
//! partitioned through its health port.

use std::sync::Arc;

use shoal_replication::clock::OffsetClock;
use shoal_replication::faults::NetFaults;
use shoal_storage::DiskFaults;

/// The knobs of a node started with `--fault-injection` (module docs).
#[derive(Debug, Default)]
pub struct Faults {
    pub net: Arc<NetFaults>,
    pub clock: Arc<OffsetClock>,
    pub disk: Arc<DiskFaults>,
}

/// The largest clock offset the endpoint injects, either way: a typing
/// slip's guard, not a safety limit. Offsets beyond the cluster's maximum
/// clock offset (500 ms) are accepted on purpose — a chaos run may test
/// what a clock that far off does — but past that maximum serializability
/// is no longer promised (a misconfigured cluster, not a fault to
/// survive); the chaos suite keeps its skews within ±400 ms.
const MAX_OFFSET_MS: i64 = 60_000;

impl Faults {
    /// The answer (HTTP status line, body) to an HTTP request whose first
    /// line is `request_line`, if it is a `/faults` request.
    pub fn answer(&self, request_line: &str) -> Option<(&'static str, String)> {
        let mut words = request_line.split_whitespace();
        let method = words.next()?;
        let target = words.next()?;
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if path != "/faults" && !path.starts_with("/faults/") {
            return None;
        }
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        };
        let outcome = match (method, path) {
            ("GET", "/faults") => Ok(()),
            ("POST", "/faults/cut") => param("peers")
                .ok_or_else(|| "missing peers=".to_string())
                .and_then(parse_peers)
                .map(|peers| self.net.set_cut(peers)),
            ("POST", "/faults/clock") => param("offset_ms")
                .ok_or_else(|| "missing offset_ms=".to_string())
                .and_then(|ms| {
                    ms.parse::<i64>()
                        .ok()
                        .filter(|ms| ms.abs() <= MAX_OFFSET_MS)
                        .ok_or_else(|| {
                            format!("offset_ms must be an integer within ±{MAX_OFFSET_MS}")
                        })
                })
                .map(|ms| self.clock.set_offset(ms * 1000)),
            ("POST", "/faults/disk") => match (param("delay_ms"), param("fail")) {
                (Some(ms), None) => ms
                    .parse::<u64>()
                    .ok()
                    .filter(|&ms| ms <= shoal_storage::disk_faults::MAX_DELAY_MS)
                    .map(|ms| self.disk.set_delay_ms(ms))
                    .ok_or_else(|| {
                        format!(
                            "delay_ms must be an integer from 0 to {}",
                            shoal_storage::disk_faults::MAX_DELAY_MS
                        )
                    }),
                (None, Some("true")) => {
                    self.disk.fail_writes();
                    Ok(())
                }
                _ => Err("expected delay_ms=N or fail=true".to_string()),
            },
            _ => return Some(("404 Not Found", "no such fault request\n".to_string())),
        };
        Some(match outcome {
            Ok(()) => ("200 OK", self.state_json()),
            Err(reason) => ("400 Bad Request", format!("{reason}\n")),
        })
    }

    fn state_json(&self) -> String {
        serde_json::json!({
            "cut": self.net.cut(),
            "clock_offset_ms": self.clock.offset() / 1000,
            "disk_delay_ms": self.disk.delay_ms(),
            "disk_failing": self.disk.failing(),
        })
        .to_string()
    }
}

/// `2,3` → [2, 3]; the empty string → [].
fn parse_peers(list: &str) -> Result<Vec<u64>, String> {
    list.split(',')
        .filter(|id| !id.is_empty())
        .map(|id| id.parse().map_err(|_| format!("not a node id: {id}")))
        .collect()
}

/// What a node without `--fault-injection` answers to a `/faults` request.
pub fn disabled(request_line: &str) -> Option<(&'static str, String)> {
    let target = request_line.split_whitespace().nth(1)?;
    (target == "/faults" || target.starts_with("/faults/") || target.starts_with("/faults?")).then(
        || {
            (
                "404 Not Found",
                "fault injection is off (start the node with --fault-injection)\n".to_string(),
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_and_clock_offsets_are_set_and_reported() {
        let faults = Faults::default();
        let (status, body) = faults
            .answer("POST /faults/cut?peers=2,3 HTTP/1.1")
            .unwrap();
        assert_eq!(status, "200 OK");
        assert_eq!(
            body,
            r#"{"clock_offset_ms":0,"cut":[2,3],"disk_delay_ms":0,"disk_failing":false}"#
        );
        assert!(faults.net.is_cut(3));
        let (_, body) = faults
            .answer("POST /faults/clock?offset_ms=-250 HTTP/1.1")
            .unwrap();
        assert_eq!(
            body,
            r#"{"clock_offset_ms":-250,"cut":[2,3],"disk_delay_ms":0,"disk_failing":false}"#
        );
        assert_eq!(faults.clock.offset(), -250_000);
        let (_, body) = faults.answer("POST /faults/cut?peers= HTTP/1.1").unwrap();
        assert_eq!(
            body,
            r#"{"clock_offset_ms":-250,"cut":[],"disk_delay_ms":0,"disk_failing":false}"#
        );
        let (_, body) = faults
            .answer("POST /faults/disk?delay_ms=150 HTTP/1.1")
            .unwrap();
        assert!(body.contains(r#""disk_delay_ms":150,"disk_failing":false"#));
        let (_, body) = faults
            .answer("POST /faults/disk?fail=true HTTP/1.1")
            .unwrap();
        assert!(body.contains(r#""disk_failing":true"#));
        assert!(faults.disk.failing());
        assert_eq!(faults.answer("GET /faults HTTP/1.1").unwrap().0, "200 OK");
    }

    #[test]
    fn bad_requests_are_refused_and_others_ignored() {
        let faults = Faults::default();
        let status = |line: &str| faults.answer(line).map(|(status, _)| status);
        assert_eq!(
            status("POST /faults/cut?peers=x HTTP/1.1"),
            Some("400 Bad Request")
        );
        assert_eq!(status("POST /faults/cut HTTP/1.1"), Some("400 Bad Request"));
        assert_eq!(
            status("POST /faults/clock?offset_ms=999999999 HTTP/1.1"),
            Some("400 Bad Request")
        );
        for line in [
            "POST /faults/disk HTTP/1.1",
            "POST /faults/disk?delay_ms=-1 HTTP/1.1",
            "POST /faults/disk?delay_ms=10001 HTTP/1.1",
            "POST /faults/disk?fail=false HTTP/1.1",
        ] {
            assert_eq!(status(line), Some("400 Bad Request"), "{line}");
        }
        assert!(!faults.disk.failing());
        assert_eq!(status("DELETE /faults HTTP/1.1"), Some("404 Not Found"));
        assert_eq!(status("GET /status HTTP/1.1"), None);
        assert!(faults.net.cut().is_empty());
        assert_eq!(
            disabled("GET /faults HTTP/1.1").map(|(s, _)| s),
            Some("404 Not Found")
        );
        assert_eq!(disabled("GET /health HTTP/1.1"), None);
    }
}
