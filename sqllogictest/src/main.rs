//! `shoal-slt`: runs sqllogictest files against Shoal.
//!
//! ```text
//! shoal-slt [--url postgres://...] [--shoal-bin PATH] [--timeout SECS]
//!           [--fail-fast] [--verbose] [--allow-failures] PATH...
//! ```
//!
//! Each PATH is a `.test`/`.slt` file or a directory searched recursively. Without
//! `--url` each file gets a fresh node (`server.rs`); with it, each file gets a fresh
//! connection to the given server. The modules, in the order a file flows through them:
//! `files` (finding), `parser` (records), `server` (a node), `runner` (executing and
//! judging, using `format` for values and hashes), `report` (counts and output).
//!
//! The last line printed is always `slt: N passed, M failed`; the exit code is non-zero
//! when anything failed, unless `--allow-failures` (for corpus pass-count reports).

mod files;
mod format;
mod parser;
mod report;
mod runner;
mod server;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

use report::{DEFAULT_FAILURE_LIMIT, FileReport, Totals};
use runner::RunConfig;

/// The engine name matched by `skipif` / `onlyif` in the corpus.
const ENGINE: &str = "postgresql";

#[derive(Parser)]
#[command(name = "shoal-slt", about = "Run sqllogictest files against Shoal")]
struct Args {
    /// Run against this server instead of starting a node per file.
    #[arg(long)]
    url: Option<String>,
    /// The shoal binary to start (default: `shoal` beside this executable).
    #[arg(long, env = "SHOAL_BIN")]
    shoal_bin: Option<PathBuf>,
    /// Start a cluster of this many nodes per file (joined and initialized)
    /// and run the file through the last node.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Per-record timeout in seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Stop at the first failed record.
    #[arg(long)]
    fail_fast: bool,
    /// Print every failure, not just the first five per file.
    #[arg(long)]
    verbose: bool,
    /// Exit with success even when records fail.
    #[arg(long)]
    allow_failures: bool,
    /// Test files (.test, .slt) or directories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(totals) => {
            print!("{}", totals.render());
            if totals.failed > 0 && !args.allow_failures {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("shoal-slt: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<Totals> {
    let files = files::find_test_files(&args.paths)?;
    if files.is_empty() {
        anyhow::bail!("no .test or .slt files found");
    }
    let target = match (&args.url, &args.shoal_bin) {
        (Some(url), _) => Target::Url(url.clone()),
        (None, Some(bin)) => Target::Spawn(bin.clone(), args.nodes),
        (None, None) => Target::Spawn(server::default_binary()?, args.nodes),
    };
    let cfg = RunConfig {
        engine: ENGINE.to_string(),
        timeout: Duration::from_secs(args.timeout),
        fail_fast: args.fail_fast,
    };
    let limit = (!args.verbose).then_some(DEFAULT_FAILURE_LIMIT);
    let mut totals = Totals::default();
    for file in files {
        let mut report = FileReport::new(file.clone(), limit);
        let started = Instant::now();
        let keep_going = run_one(&file, &target, &cfg, &mut report).await;
        report.elapsed = started.elapsed();
        print!("{}", report.render());
        totals.add(&report);
        if !keep_going {
            break;
        }
    }
    Ok(totals)
}

/// Where each file's records are sent.
enum Target {
    /// An existing server, given by `--url`.
    Url(String),
    /// A fresh node (or cluster of this many nodes) per file, started from
    /// this binary.
    Spawn(PathBuf, usize),
}

/// Runs one file; `false` means fail-fast stopped the run.
async fn run_one(file: &Path, target: &Target, cfg: &RunConfig, report: &mut FileReport) -> bool {
    let records = match files::read_text(file).map(|text| parser::parse(&text)) {
        Ok(Ok(records)) => records,
        Ok(Err(e)) => {
            report.file_error(format!("parse error at {e}"));
            return !cfg.fail_fast;
        }
        Err(e) => {
            report.file_error(format!("{e:#}"));
            return !cfg.fail_fast;
        }
    };
    let (bin, nodes) = match target {
        Target::Url(url) => return runner::run_file(&records, url, cfg, report).await,
        Target::Spawn(bin, nodes) => (bin, *nodes),
    };
    let mut node = match server::Cluster::start(bin, nodes).await {
        Ok(node) => node,
        Err(e) => {
            report.file_error(format!("could not start a node: {e:#}"));
            return !cfg.fail_fast;
        }
    };
    let keep_going = runner::run_file(&records, &node.connection_string(), cfg, report).await;
    if let Some(status) = node.exit_status() {
        report.note(format!(
            "the node exited during the file ({status}); its log ends:\n{}",
            node.log_tail()
        ));
    }
    keep_going
}
