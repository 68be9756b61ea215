//! `shoal-loadgen`: closed-loop write load, for comparing replicated writes
//! of different systems in one benchmark run.
//!
//! Each of `--clients` clients has its own connection and sends one write,
//! waits for its acknowledgement, and sends the next, for `--seconds`.
//! Clients are spread round-robin over the given endpoints. Every
//! acknowledged write's latency is recorded; the result is one JSON line:
//! clients, acknowledged writes, errors, writes per second, p50 and p99
//! latency in milliseconds.
//!
//! * `pg`: `INSERT INTO bench (id, v) VALUES ($1, $2)` as a prepared
//!   statement in autocommit, ids unique per client and run, `v` 100 bytes —
//!   against Shoal or PostgreSQL.
//! * `etcd`: `PUT` of a 16-byte key and a 100-byte value through etcd v3's
//!   JSON gateway (`POST /v3/kv/put`) over keep-alive HTTP/1.1 — the same
//!   logical write, durable on a quorum when acknowledged.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
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
    /// Seconds to run.
    #[arg(long, global = true, default_value_t = 10)]
    seconds: u64,
    /// Added to every id/key, so runs against one table never collide.
    #[arg(long, global = true, default_value_t = 0)]
    offset: i64,
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

/// What one client saw.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

const VALUE: [u8; 100] = [b'x'; 100];

async fn pg_client(conn: String, client: i64, offset: i64, until: Instant) -> Tally {
    let mut tally = Tally::default();
    let (db, connection) = match tokio_postgres::connect(&conn, tokio_postgres::NoTls).await {
        Ok(pair) => pair,
        Err(e) => {
            tally.errors += 1;
            tally.first_error = Some(pg_error(&e));
            return tally;
        }
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let statement = match db
        .prepare("INSERT INTO bench (id, v) VALUES ($1, $2)")
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tally.errors += 1;
            tally.first_error = Some(pg_error(&e));
            return tally;
        }
    };
    let value = String::from_utf8_lossy(&VALUE).into_owned();
    let mut seq = 0i64;
    while Instant::now() < until {
        seq += 1;
        let id = offset + client * 1_000_000_000 + seq;
        let started = Instant::now();
        match db.execute(&statement, &[&id, &value]).await {
            Ok(_) => tally.latencies_us.push(micros(started)),
            Err(e) => {
                tally.errors += 1;
                tally.first_error.get_or_insert_with(|| pg_error(&e));
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

/// One keep-alive HTTP/1.1 POST; true on a 200 answer.
async fn http_post(
    stream: &mut BufReader<TcpStream>,
    host: &SocketAddr,
    path: &str,
    body: &str,
) -> anyhow::Result<bool> {
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
        }
    } else {
        let mut body = vec![0u8; length.unwrap_or(0)];
        stream.read_exact(&mut body).await?;
    }
    Ok(status.split_whitespace().nth(1) == Some("200"))
}

async fn etcd_client(endpoint: SocketAddr, client: i64, offset: i64, until: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut stream = match TcpStream::connect(endpoint).await {
        Ok(s) => {
            let _ = s.set_nodelay(true);
            BufReader::new(s)
        }
        Err(e) => {
            tally.errors += 1;
            tally.first_error = Some(e.to_string());
            return tally;
        }
    };
    let value = base64(&VALUE);
    let mut seq = 0i64;
    while Instant::now() < until {
        seq += 1;
        let key = format!("k{:015}", offset + client * 1_000_000_000 + seq);
        let body = format!(
            r#"{{"key":"{}","value":"{value}"}}"#,
            base64(key.as_bytes())
        );
        let started = Instant::now();
        match http_post(&mut stream, &endpoint, "/v3/kv/put", &body).await {
            Ok(true) => tally.latencies_us.push(micros(started)),
            Ok(false) => {
                tally.errors += 1;
                tally
                    .first_error
                    .get_or_insert_with(|| "non-200 answer".to_string());
            }
            Err(e) => {
                tally.errors += 1;
                tally.first_error.get_or_insert_with(|| e.to_string());
                break;
            }
        }
    }
    tally
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
        let id = client as i64;
        tasks.push(match &cli.target {
            Target::Pg { conn } => {
                let conn = conn[client % conn.len()].clone();
                tokio::spawn(pg_client(conn, id, cli.offset, until))
            }
            Target::Etcd { endpoint } => {
                let endpoint = endpoint[client % endpoint.len()];
                tokio::spawn(etcd_client(endpoint, id, cli.offset, until))
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
        "writes_per_sec": all.len() as f64 / elapsed,
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
    fn percentiles_pick_ranks() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile(&v, 50.0), 51.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
