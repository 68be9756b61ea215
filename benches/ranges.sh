#!/usr/bin/env bash
# benches/ranges.sh — point reads and scans as a table grows tenfold, with
# Shoal's table split into many ranges; PostgreSQL alongside, same run.
#
# What it measures
#   For each table size (default 100000 and 1000000 rows), one run of
#   benches/sysbench.sh with only oltp_point_select (1 and 8 threads) and
#   the full-scan timing, Shoal's table configured with range_max_bytes =
#   BENCH_RANGE_MAX_BYTES (default 4 MiB) and split before measuring. Point
#   reads should stay flat as the table (and the number of ranges) grows
#   tenfold; scans should keep their rows/s.
#
# Usage
#   benches/ranges.sh            sizes 100000 and 1000000, 20 s per run
#   benches/ranges.sh --smoke    sizes 2000 and 20000, range_max_bytes 64 KiB, 3 s per run
#   Environment overrides: RANGES_SIZES (e.g. "100000 1000000"),
#   BENCH_RANGE_MAX_BYTES, BENCH_TIME, BENCH_THREADS, and every knob of
#   benches/sysbench.sh.
#   Writes benches/results/ranges-<date>.md: the per-size reports one after
#   the other.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benches/lib.sh
source "$REPO_ROOT/benches/lib.sh"
smoke_flag "$0" "$@"
if (( SMOKE )); then
  SIZES=${RANGES_SIZES:-"2000 20000"}
  export BENCH_RANGE_MAX_BYTES=${BENCH_RANGE_MAX_BYTES:-65536}
  export BENCH_TIME=${BENCH_TIME:-3}
  export BENCH_THREADS=${BENCH_THREADS:-1}
else
  SIZES=${RANGES_SIZES:-"100000 1000000"}
  export BENCH_RANGE_MAX_BYTES=${BENCH_RANGE_MAX_BYTES:-4194304}
  export BENCH_THREADS=${BENCH_THREADS:-"1 8"}
fi
# One table that grows, read by point selects.
export BENCH_WORKLOADS=oltp_point_select BENCH_TABLES=${BENCH_TABLES:-1}
STAMP=$(date -u +%Y%m%d-%H%M%S)
SUMMARY=$REPO_ROOT/benches/results/ranges-$STAMP.md
mkdir -p "$REPO_ROOT/benches/results"

{
  echo "# Ranges: point reads and scans as the table grows — $STAMP"
  echo
  echo "Table sizes: $SIZES rows; Shoal range_max_bytes = $BENCH_RANGE_MAX_BYTES."
  echo
} >"$SUMMARY"
for size in $SIZES; do
  export BENCH_TABLE_SIZE=$size BENCH_REPORT_NAME=ranges-$size
  "$REPO_ROOT/benches/sysbench.sh" >/dev/null
  report=$(ls -t "$REPO_ROOT"/benches/results/ranges-"$size"-*.md | head -n1)
  { sed 's/^#/##/' "$report"; echo; } >>"$SUMMARY"
done
cat "$SUMMARY"
echo "[bench] report: ${SUMMARY#"$REPO_ROOT"/}" >&2
