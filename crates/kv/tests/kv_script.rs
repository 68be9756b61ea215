//! Runs every `testdata/*.txt` MVCC script twice, over `MemoryEngine` and over
//! `RocksEngine` in a temporary directory; both runs must produce the
//! recorded output. See `script/mod.rs` for the file format.
//!
//! Time is a `ManualClock` starting at 1000 µs, so timestamps are stable.
//!
//! Commands (`<t>` names a transaction; keys and values are strings, quote
//! them to include spaces):
//! * `begin <t> [serializable]` — start a transaction (snapshot isolation
//!   unless `serializable`); prints its read timestamp.
//! * `put <t> k=v...`, `delete <t> k...`, `get <t> k...`
//! * `scan <t> <start> <end> [limit=N] [page=N]` — `""` as end means
//!   unbounded; `page=N` pages through the whole span N pairs at a time,
//!   resuming after the last key as callers do.
//! * `commit <t>`, `rollback <t>`, `has_writes <t>`
//! * `savepoint <t> <name>`, `rollback_to <t> <name>`, `release <t>` (drops
//!   every savepoint of `<t>`)
//! * `lock <t> <holder>` — lock the keys `<t>` wrote since its last lock
//!   (row locks, `write_locks.rs`); prints the keys changed since its
//!   snapshot.
//! * `ttl <µs>` — how long a transaction record stays pending unrenewed.
//! * `crash <t>` — forget `<t>` without rolling it back, as a dead node
//!   would.
//! * `gc window=<µs>` — a GC pass; prints its stats.
//! * `tick <µs>`, `clock <µs>` — advance / set the wall clock.
//! * `latest` — the latest committed timestamp.
//! * `split <key>` — split the range holding `key` at it.
//! * `dump` — every raw engine entry, versions decoded; commit records (keyed
//!   by random ids) as one line of their timestamps.
//! * `reopen` — drop everything (open transactions roll back) and reopen the
//!   store over the same data.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use shoal_datadriven as script;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use shoal_kv::error::printable_key;
use shoal_kv::mvcc::{self, VERSION_PREFIX};
use shoal_kv::{FIRST_RANGE, keys};
use shoal_kv::{Isolation, Kv, ManualClock, Savepoint, Txn};
use shoal_storage::{Engine, MemoryEngine, RocksEngine};

#[derive(Clone, Copy, Debug)]
enum Backend {
    Memory,
    Rocks,
}

struct Harness {
    dir: Option<tempfile::TempDir>,
    engine: Arc<dyn Engine>,
    wall: Arc<ManualClock>,
    kv: Arc<Kv>,
    txns: HashMap<String, Arc<Txn>>,
    savepoints: HashMap<(String, String), Savepoint>,
}

impl Harness {
    fn new(backend: Backend) -> Self {
        let (dir, engine): (_, Arc<dyn Engine>) = match backend {
            Backend::Memory => (None, Arc::new(MemoryEngine::new())),
            Backend::Rocks => {
                let dir = tempfile::tempdir().unwrap();
                let engine = Arc::new(RocksEngine::open(dir.path()).unwrap());
                (Some(dir), engine)
            }
        };
        let wall = Arc::new(ManualClock::new(1000));
        let kv = Kv::open_with_clock(engine.clone(), wall.clone()).unwrap();
        Self {
            dir,
            engine,
            wall,
            kv,
            txns: HashMap::new(),
            savepoints: HashMap::new(),
        }
    }

    fn reopen(&mut self) {
        // Release every handle on the engine first: RocksDB holds a lock on
        // its directory until the last one is gone.
        self.txns.clear();
        let placeholder: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        self.kv = Kv::open_with_clock(placeholder.clone(), self.wall.clone()).unwrap();
        let old = std::mem::replace(&mut self.engine, placeholder);
        self.engine = match &self.dir {
            None => old,
            Some(dir) => {
                drop(old);
                Arc::new(RocksEngine::open(dir.path()).unwrap())
            }
        };
        self.kv = Kv::open_with_clock(self.engine.clone(), self.wall.clone()).unwrap();
    }

    fn txn(&self, name: &str) -> &Arc<Txn> {
        self.txns
            .get(name)
            .unwrap_or_else(|| panic!("no transaction {name}"))
    }

    fn run(&mut self, line: &str) -> String {
        let tokens = script::tokenize(line);
        let (command, args) = tokens.split_first().expect("empty command");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let result: Result<String, shoal_kv::KvError> = match (command.as_str(), args.as_slice()) {
            ("begin", [t, opts @ ..]) => {
                let txn = match self.kv.begin() {
                    Ok(txn) => txn,
                    Err(e) => return format!("error: {e}"),
                };
                if opts == ["serializable"] {
                    assert!(txn.set_isolation(Isolation::Serializable));
                } else {
                    assert!(opts.is_empty(), "begin <t> [serializable]");
                }
                let out = format!("{t}: read_ts={}", txn.read_ts());
                self.txns.insert(t.to_string(), txn);
                Ok(out)
            }
            ("put", [t, pairs @ ..]) => pairs
                .iter()
                .try_for_each(|p| {
                    let (k, v) = p.split_once('=').expect("put wants k=v");
                    self.txn(t).put(k.into(), v.into())
                })
                .map(|()| "ok".into()),
            ("delete", [t, keys @ ..]) => keys
                .iter()
                .try_for_each(|k| self.txn(t).delete(k.as_bytes().to_vec()))
                .map(|()| "ok".into()),
            ("get", [t, keys @ ..]) => keys
                .iter()
                .map(|k| {
                    self.txn(t).get(k.as_bytes()).map(|v| match v {
                        Some(v) => format!("{k}={}", printable_key(&v)),
                        None => format!("{k}: none"),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|lines| lines.join("\n")),
            ("scan", [t, start, end, opts @ ..]) => self.scan(t, start, end, opts),
            ("commit", [t]) => self.txn(t).commit().map(|ts| format!("committed ts={ts}")),
            ("rollback", [t]) => {
                self.txn(t).rollback();
                Ok("ok".into())
            }
            ("renew", [t]) => self.txn(t).renew().map(|next| {
                let out = format!(
                    "{t}: read_ts={} conflict_base={}",
                    next.read_ts(),
                    next.conflict_base()
                );
                self.txns.insert(t.to_string(), next);
                out
            }),
            ("has_writes", [t]) => Ok(self.txn(t).has_writes().to_string()),
            ("lock", [t, holder]) => self.txn(t).lock_writes(holder.as_bytes()).map(|changed| {
                if changed.is_empty() {
                    "locked".into()
                } else {
                    let keys: Vec<String> = changed.iter().map(|k| printable_key(k)).collect();
                    format!("locked; changed: {}", keys.join(" "))
                }
            }),
            ("ttl", [us]) => {
                self.kv
                    .set_txn_ttl(Duration::from_micros(us.parse().unwrap()));
                Ok("ok".into())
            }
            ("crash", [t]) => {
                let txn = self.txns.remove(*t).expect("no such transaction");
                // Never rolled back: its locks stay until they expire.
                std::mem::forget(txn);
                Ok("ok".into())
            }
            ("savepoint", [t, name]) => self.txn(t).savepoint().map(|mark| {
                self.savepoints
                    .insert((t.to_string(), name.to_string()), mark);
                "ok".into()
            }),
            ("rollback_to", [t, name]) => {
                let mark = self.savepoints[&(t.to_string(), name.to_string())];
                self.txn(t).rollback_to(mark).map(|()| "ok".into())
            }
            ("release", [t]) => {
                self.txn(t).release_savepoints();
                self.savepoints.retain(|(owner, _), _| owner.as_str() != *t);
                Ok("ok".into())
            }
            ("gc", [window]) => {
                let us: u64 = window
                    .strip_prefix("window=")
                    .expect("gc window=<µs>")
                    .parse()
                    .unwrap();
                self.kv.gc(Duration::from_micros(us)).map(|s| {
                    format!(
                        "versions_removed={} keys_scanned={}",
                        s.versions_removed, s.keys_scanned
                    )
                })
            }
            ("tick", [us]) => {
                self.wall.advance(us.parse().unwrap());
                Ok(format!("wall={}", self.wall_now()))
            }
            ("clock", [us]) => {
                self.wall.set(us.parse().unwrap());
                Ok(format!("wall={}", self.wall_now()))
            }
            ("split", [key]) => self.kv.split_at(key.as_bytes()).map(|_| "ok".into()),
            ("latest", []) => Ok(format!("latest_ts={}", self.kv.latest_ts())),
            ("dump", []) => Ok(self.dump()),
            ("reopen", []) => {
                self.reopen();
                Ok(format!("latest_ts={}", self.kv.latest_ts()))
            }
            _ => panic!("bad command: {line}"),
        };
        result.unwrap_or_else(|e| format!("error: {e}"))
    }

    fn wall_now(&self) -> u64 {
        use shoal_kv::WallClock;
        self.wall.now_micros()
    }

    fn scan(
        &self,
        t: &str,
        start: &str,
        end: &str,
        opts: &[&str],
    ) -> Result<String, shoal_kv::KvError> {
        let mut limit = usize::MAX;
        let mut page = None;
        for opt in opts {
            match opt.split_once('=') {
                Some(("limit", n)) => limit = n.parse().unwrap(),
                Some(("page", n)) => page = Some(n.parse::<usize>().unwrap()),
                _ => panic!("bad scan option {opt}"),
            }
        }
        let txn = self.txn(t);
        let pairs = match page {
            None => txn.scan(start.as_bytes(), end.as_bytes(), limit)?,
            Some(size) => {
                let mut all = Vec::new();
                let mut from = start.as_bytes().to_vec();
                loop {
                    let chunk = txn.scan(&from, end.as_bytes(), size)?;
                    let done = chunk.len() < size;
                    if let Some((last, _)) = chunk.last() {
                        from = last.clone();
                        from.push(0);
                    }
                    all.extend(chunk);
                    if done {
                        break;
                    }
                }
                all
            }
        };
        if pairs.is_empty() {
            return Ok("(empty)".into());
        }
        Ok(pairs
            .iter()
            .map(|(k, v)| format!("{}={}", printable_key(k), printable_key(v)))
            .collect::<Vec<_>>()
            .join("\n"))
    }

    fn dump(&self) -> String {
        let mut lines = Vec::new();
        // Commit records are keyed by random ids: listed by timestamp.
        let mut records = Vec::new();
        for item in self.engine.scan(b"", None) {
            let (key, value) = item.unwrap();
            if key.starts_with(&keys::commit_record_prefix(FIRST_RANGE)) {
                records.push(u64::from_be_bytes(value.as_slice().try_into().unwrap()));
                continue;
            }
            let line = match key.first() {
                Some(&VERSION_PREFIX) => {
                    let (user_key, ts) = mvcc::decode_version_key(&key).unwrap();
                    let value = match mvcc::decode_value(&value).unwrap() {
                        Some(v) => printable_key(&v),
                        None => "<tombstone>".into(),
                    };
                    format!("{}@{ts} = {value}", printable_key(&user_key))
                }
                _ if key == keys::last_commit(FIRST_RANGE)
                    || key == keys::gc_threshold(FIRST_RANGE)
                    || key == keys::size(FIRST_RANGE) =>
                {
                    let name = if key == keys::last_commit(FIRST_RANGE) {
                        "last_commit"
                    } else if key == keys::gc_threshold(FIRST_RANGE) {
                        "gc_threshold"
                    } else {
                        "bytes"
                    };
                    format!(
                        "range {FIRST_RANGE} {name} = {}",
                        u64::from_be_bytes(value.as_slice().try_into().unwrap())
                    )
                }
                _ => format!("raw {} = {}", printable_key(&key), printable_key(&value)),
            };
            lines.push(line);
        }
        if !records.is_empty() {
            records.sort_unstable();
            let records: Vec<String> = records.iter().map(u64::to_string).collect();
            lines.push(format!("commit records at {}", records.join(",")));
        }
        if lines.is_empty() {
            "(empty)".into()
        } else {
            lines.join("\n")
        }
    }
}

fn scripts() -> Vec<PathBuf> {
    script::scripts_in(&script::package_dir(env!("CARGO_MANIFEST_DIR")).join("tests/testdata"))
}

fn run_all(backend: Backend) {
    for path in scripts() {
        let mut harness = Harness::new(backend);
        script::run_script(&path, |line| harness.run(line));
    }
}

#[test]
fn scripts_on_memory_engine() {
    run_all(Backend::Memory);
}

#[test]
fn scripts_on_rocks_engine() {
    // Only one backend should rewrite expectations; the memory run does.
    if std::env::var("UPDATE_EXPECT").is_ok_and(|v| v == "1") {
        return;
    }
    run_all(Backend::Rocks);
}
