//! `shoal-loadgen`: closed-loop load, for comparing the write and read
//! paths of different systems in one benchmark run.
//!
//! Each of `--clients` clients has its own connection and sends one
//! request, waits for its answer, and sends the next, for `--seconds`.
//! Clients are spread round-robin over the given endpoints. Every
//! successful request's latency is recorded; the result is one JSON line:
//! clients, acknowledged requests, errors, requests per second, p50 and p99
//! latency in milliseconds.
//!
//! What a request is (`--op`), against Shoal or PostgreSQL (`pg`) and etcd
//! (`etcd`, through its v3 JSON gateway over keep-alive HTTP/1.1):
//!
//! | op | `pg` | `etcd` |
//! |---|---|---|
//! | `insert` | `INSERT INTO bench (id, v) VALUES ($1, $2)`, ids unique per client and run, `v` 100 bytes | `PUT` of a new 16-byte key, 100-byte value |
//! | `put` | `INSERT INTO kv (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = excluded.v`, a random key of `--keys`, `v` 256 bytes | `PUT` of the same key and value |
//! | `get` | `SELECT v FROM kv WHERE k = $1`, a random key of `--keys` | a linearizable `range` of that key |
//! | `load` | the `put` statement for every key of `--keys` once, the keys shared out among the clients; ends when all are written | the same `PUT`s |
//!
//! Keys are 16 bytes (`k` and 15 digits). A `get` that finds no value is
//! an error (load first), so a fast answer that is wrong never counts.
//! Writes in autocommit: acknowledged means durable on a quorum for a
//! replicated system.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Parser)]
#[command(name = "shoal-loadgen")]
struct Cli {
    #[command(subcommand)]
    target: Target,
    /// Concurrent clients.
    #[arg(long, global = true, default_value_t = 1)]
    clients: usize,
    /// Seconds to run (`load` ends when every key is written).
    #[arg(long, global = true, default_value_t = 10)]
    seconds: u64,
    /// Added to every id/key of `insert`, so runs against one table never
    /// collide.
    #[arg(long, global = true, default_value_t = 0)]
    offset: i64,
    /// What each request is (see the module documentation).
    #[arg(long, global = true, value_enum, default_value_t = Op::Insert)]
    op: Op,
    /// The key space of `put`, `get` and `load`.
    #[arg(long, global = true, default_value_t = 100_000)]
    keys: u64,
}

#[derive(Subcommand)]
enum Target {
    /// PostgreSQL protocol (Shoal or PostgreSQL); `--conn` repeated per node.
    Pg {
        #[arg(long, required = true)]
        conn: Vec<String>,
    },
    /// etcd v3 JSON gateway; `--endpoint` (host:port) repeated per member.
    Etcd {
        #[arg(long, required = true)]
        endpoint: Vec<SocketAddr>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Op {
    Insert,
    Put,
    Get,
    Load,
}

/// What one client saw.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, e: impl FnOnce() -> String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e());
        }
    }
}

/// The value `insert` writes.
const INSERT_VALUE: [u8; 100] = [b'x'; 100];
/// The value `put` and `load` write.
const KV_VALUE: [u8; 256] = [b'v'; 256];

/// Which key a client's `n`-th request is about.
struct Keys {
    op: Op,
    client: u64,
    clients: u64,
    offset: i64,
    space: u64,
    /// xorshift state: a fixed seed per client, so runs repeat.
    random: u64,
}

impl Keys {
    fn new(cli: &Cli, client: usize) -> Keys {
        Keys {
            op: cli.op,
            client: client as u64,
            clients: cli.clients.max(1) as u64,
            offset: cli.offset,
            space: cli.keys.max(1),
            random: 0x9e37_79b9_7f4a_7c15 ^ (client as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9),
        }
    }

    /// The number of the `seq`-th (from 1) request's key, or None when a
    /// `load` client has written its share.
    fn next(&mut self, seq: u64) -> Option<u64> {
        match self.op {
            Op::Insert => {
                let id = self.offset + self.client as i64 * 1_000_000_000 + seq as i64;
                Some(id as u64)
            }
            Op::Load => {
                let n = self.client + (seq - 1) * self.clients;
                (n < self.space).then_some(n)
            }
            Op::Put | Op::Get => {
                self.random ^= self.random << 13;
                self.random ^= self.random >> 7;
                self.random ^= self.random << 17;
                Some(self.random % self.space)
            }
        }
    }
}

/// The 16-byte key numbered `n`.
fn key_bytes(n: u64) -> Vec<u8> {
    format!("k{n:015}").into_bytes()
}

async fn pg_client(conn: String, mut keys: Keys, until: Instant) -> Tally {
    let mut tally = Tally::default();
    let (db, connection) = match tokio_postgres::connect(&conn, tokio_postgres::NoTls).await {
        Ok(pair) => pair,
        Err(e) => {
            tally.error(|| pg_error(&e));
            return tally;
        }
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let sql = match keys.op {
        Op::Insert => "INSERT INTO bench (id, v) VALUES ($1, $2)",
        Op::Put | Op::Load => {
            "INSERT INTO kv (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = excluded.v"
        }
        Op::Get => "SELECT v FROM kv WHERE k = $1",
    };
    let statement = match db.prepare(sql).await {
        Ok(s) => s,
        Err(e) => {
            tally.error(|| pg_error(&e));
            return tally;
        }
    };
    let text_value = String::from_utf8_lossy(&INSERT_VALUE).into_owned();
    let mut seq = 0;
    while keys.op == Op::Load || Instant::now() < until {
        seq += 1;
        let Some(n) = keys.next(seq) else { break };
        let started = Instant::now();
        let outcome = match keys.op {
            Op::Insert => db
                .execute(&statement, &[&(n as i64), &text_value])
                .await
                .map(|_| true),
            Op::Put | Op::Load => db
                .execute(&statement, &[&key_bytes(n), &KV_VALUE.as_slice()])
                .await
                .map(|_| true),
            Op::Get => db
                .query_opt(&statement, &[&key_bytes(n)])
                .await
                .map(|row| row.is_some()),
        };
        match outcome {
            Ok(true) => tally.latencies_us.push(micros(started)),
            Ok(false) => tally.error(|| format!("key {n} not found")),
            Err(e) => {
                tally.error(|| pg_error(&e));
                if db.is_closed() {
                    break;
                }
            }
        }
    }
    tally
}
/// A PostgreSQL error with its SQLSTATE and server message (the driver's
/// own text is only "db error").
fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

fn micros(started: Instant) -> u32 {
    u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX)
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(TABLE[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One keep-alive HTTP/1.1 POST: whether the answer was 200, and its body.
async fn http_post(
    stream: &mut BufReader<TcpStream>,
    host: &SocketAddr,
    path: &str,
    body: &str,
) -> anyhow::Result<(bool, Vec<u8>)> {
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.get_mut().write_all(request.as_bytes()).await?;
    let mut status = String::new();
    stream.read_line(&mut status).await?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            anyhow::bail!("connection closed");
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = Some(v.trim().parse()?);
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut answer = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            stream.read_line(&mut size).await?;
            let size = usize::from_str_radix(size.trim(), 16)?;
            let mut chunk = vec![0u8; size + 2];
            stream.read_exact(&mut chunk).await?;
            if size == 0 {
                break;
            }
            answer.extend_from_slice(&chunk[..size]);
        }
    } else {
        answer = vec![0u8; length.unwrap_or(0)];
        stream.read_exact(&mut answer).await?;
    }
    Ok((status.split_whitespace().nth(1) == Some("200"), answer))
}

async fn etcd_client(endpoint: SocketAddr, mut keys: Keys, until: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut stream = match TcpStream::connect(endpoint).await {
        Ok(s) => {
            let _ = s.set_nodelay(true);
            BufReader::new(s)
        }
        Err(e) => {
            tally.error(|| e.to_string());
            return tally;
        }
    };
    let insert_value = base64(&INSERT_VALUE);
    let kv_value = base64(&KV_VALUE);
    let mut seq = 0;
    while keys.op == Op::Load || Instant::now() < until {
        seq += 1;
        let Some(n) = keys.next(seq) else { break };
        let key = base64(&key_bytes(n));
        let (path, body) = match keys.op {
            Op::Insert => (
                "/v3/kv/put",
                format!(r#"{{"key":"{key}","value":"{insert_value}"}}"#),
            ),
            Op::Put | Op::Load => (
                "/v3/kv/put",
                format!(r#"{{"key":"{key}","value":"{kv_value}"}}"#),
            ),
            Op::Get => ("/v3/kv/range", format!(r#"{{"key":"{key}"}}"#)),
        };
        let started = Instant::now();
        match http_post(&mut stream, &endpoint, path, &body).await {
            // A range answer lists the key's value under `kvs`; without it
            // the key was not found.
            Ok((true, answer)) if keys.op != Op::Get || contains(&answer, b"\"kvs\"") => {
                tally.latencies_us.push(micros(started))
            }
            Ok((true, _)) => tally.error(|| format!("key {n} not found")),
            Ok((false, answer)) => {
                tally.error(|| format!("non-200 answer: {}", String::from_utf8_lossy(&answer)))
            }
            Err(e) => {
                tally.error(|| e.to_string());
                break;
            }
        }
    }
    tally
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[rank.min(sorted.len() - 1)]) / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let started = Instant::now();
    let until = started + Duration::from_secs(cli.seconds);
    let mut tasks = Vec::new();
    for client in 0..cli.clients {
        let keys = Keys::new(&cli, client);
        tasks.push(match &cli.target {
            Target::Pg { conn } => {
                let conn = conn[client % conn.len()].clone();
                tokio::spawn(pg_client(conn, keys, until))
            }
            Target::Etcd { endpoint } => {
                let endpoint = endpoint[client % endpoint.len()];
                tokio::spawn(etcd_client(endpoint, keys, until))
            }
        });
    }
    let mut all = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        let tally = task.await?;
        all.extend(tally.latencies_us);
        errors += tally.errors;
        first_error = first_error.or(tally.first_error);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let report = serde_json::json!({
        "clients": cli.clients,
        "acknowledged": all.len(),
        "errors": errors,
        "first_error": first_error,
        "seconds": elapsed,
        "ops_per_sec": all.len() as f64 / elapsed,
        "p50_ms": percentile(&all, 50.0),
        "p99_ms": percentile(&all, 99.0),
    });
    println!("{report}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn load_shares_every_key_once() {
        let cli = Cli::parse_from([
            "shoal-loadgen",
            "--op",
            "load",
            "--keys",
            "10",
            "--clients",
            "3",
            "pg",
            "--conn",
            "x",
        ]);
        let mut seen: Vec<u64> = (0..3)
            .flat_map(|c| {
                let mut keys = Keys::new(&cli, c);
                (1..).map_while(move |seq| keys.next(seq))
            })
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!(key_bytes(7), b"k000000000000007");
    }

    #[test]
    fn percentiles_pick_ranks() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile(&v, 50.0), 51.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
