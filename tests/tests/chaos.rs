//! Chaos runs (`shoal_tests::chaos`): each workload against a cluster of
//! real `shoal` processes while nemeses kill, pause, partition, skew
//! clocks, break disks, and split, merge and move ranges and their
//! leaderships. Every run prints its report — seed, faults, operations,
//! anomalies — and must find no anomaly and make progress.
//!
//! In `make test` each run lasts 20 seconds (about four minutes in all,
//! the runs one after another). `make chaos` runs them for longer
//! (`SHOAL_CHAOS_SECONDS`), again and again with fresh seeds;
//! `SHOAL_CHAOS_SEED` replays a run's schedule.

use std::io::Write;

use shoal_tests::chaos::nemesis::Nemesis;
use shoal_tests::chaos::workloads::Workload;
use shoal_tests::chaos::{Config, run};

/// One run at a time: clusters side by side would starve each other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The operations a run must complete, however hard it was hit.
const MIN_OK: usize = 10;

async fn chaos(config: Config) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let report = run(config).await;
    // Straight to stderr, past the test harness's capture: every run's
    // report shows, passed or not.
    let _ = writeln!(std::io::stderr(), "{report}");
    assert!(
        report.anomalies.is_empty(),
        "anomalies found (seed {}): {:#?}",
        report.config.seed,
        report.anomalies
    );
    assert!(
        report.ok >= MIN_OK,
        "only {} operations succeeded (seed {})",
        report.ok,
        report.config.seed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bank_under_kills_pauses_and_partitions() {
    use Nemesis::*;
    chaos(Config::new(
        Workload::Bank,
        &[Kill, Pause, PartitionHalves, Splits],
        3,
        20,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn set_under_isolated_leaders_one_way_cuts_and_dead_disks() {
    use Nemesis::*;
    chaos(Config::new(
        Workload::Set,
        &[PartitionLeader, PartitionOneWay, Kill, DiskFailure],
        3,
        20,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registers_on_five_nodes_under_a_majority_ring_and_clocks() {
    use Nemesis::*;
    let mut config = Config::new(
        Workload::Register,
        &[PartitionRing, Clock, Pause, LeaderTransfers],
        5,
        20,
    );
    config.clients_per_node = 1;
    config.overlap = true;
    chaos(config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bank_on_four_nodes_under_split_merge_move_and_leader_storms() {
    use Nemesis::*;
    let mut config = Config::new(
        Workload::Bank,
        &[Splits, Merges, ReplicaMoves, LeaderTransfers, Kill],
        4,
        20,
    );
    config.overlap = true;
    chaos(config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sequences_under_kills_clocks_and_slow_disks() {
    use Nemesis::*;
    chaos(Config::new(
        Workload::Sequence,
        &[Kill, Clock, PartitionHalves, SlowDisk],
        3,
        20,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_append_under_splits_kills_and_partitions_at_once() {
    use Nemesis::*;
    let mut config = Config::new(
        Workload::ListAppend,
        &[Splits, Kill, PartitionLeader, Pause],
        3,
        20,
    );
    config.overlap = true;
    chaos(config).await;
}
