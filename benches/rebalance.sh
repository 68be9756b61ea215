#!/usr/bin/env bash
# benches/rebalance.sh — how long a loaded cluster takes to hand a new node
# its share, per GiB moved.
#
# What it measures
#   A three-node Shoal cluster loads BENCH_ROWS rows (default 1000000, about
#   BENCH_VALUE_BYTES = 400 bytes each) into a table whose ranges split at
#   BENCH_RANGE_MAX_BYTES (default 16 MiB). Once the splits settle, a
#   fourth node joins, and the script times from its start until replica
#   and lease counts are within ±15% of the mean on all four nodes. The
#   bytes moved are the sizes of the ranges that gained a replica on the
#   new node; the figure is seconds per GiB moved. The cluster answers a
#   checksum query before and after, which must agree.
#   (Moving replicas has no PostgreSQL counterpart; benches/ranges.sh
#   measures reads against PostgreSQL as the table grows.)
#
# How
#   Starts the nodes on free 127.0.0.1 ports with stores in a temporary
#   directory (`shoal start --join …`, `shoal init`), loads through psql,
#   polls shoal_internal.nodes and shoal_internal.ranges every second;
#   writes benches/results/rebalance-<date>.md and prints it. Everything
#   started is stopped by pid on exit (also on failure or Ctrl-C).
#
# Usage
#   benches/rebalance.sh [--smoke]   (--smoke: 40000 rows, 256 KiB ranges)
#   Environment: SHOAL_BIN, BENCH_ROWS, BENCH_VALUE_BYTES,
#   BENCH_RANGE_MAX_BYTES, BENCH_TMPDIR.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benches/lib.sh
source "$REPO_ROOT/benches/lib.sh"
smoke_flag "$0" "$@"
if (( SMOKE )); then
  ROWS=${BENCH_ROWS:-40000} MAX_BYTES=${BENCH_RANGE_MAX_BYTES:-262144}
else
  ROWS=${BENCH_ROWS:-1000000} MAX_BYTES=${BENCH_RANGE_MAX_BYTES:-16777216}
fi
VALUE_BYTES=${BENCH_VALUE_BYTES:-400}
BATCH=20000

RESULTS_DIR=$REPO_ROOT/benches/results
STAMP=$(date -u +%Y%m%d-%H%M%S)
(( SMOKE )) && STAMP=$STAMP-smoke
REPORT=$RESULTS_DIR/rebalance-$STAMP.md
mkdir -p "$RESULTS_DIR"

command -v psql >/dev/null 2>&1 || install_debs postgresql-client
SHOAL=$(find_shoal_bin)
WORK=$(mktemp -d ${BENCH_TMPDIR:+-p "$BENCH_TMPDIR"})
PIDS=()
cleanup() {
  local rc=$? pid
  set +e
  for pid in "${PIDS[@]}"; do stop_pid "$pid" "shoal"; done
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

conn() { echo "host=127.0.0.1 port=$1 user=shoal dbname=shoal"; }
sql() { timeout 600 psql -XAtq -v ON_ERROR_STOP=1 "$(conn "${SQL[0]}")" -c "$1"; }

SQL=() LISTEN=()
for i in 1 2 3 4; do pick_port sql_port; pick_port listen_port; SQL+=("$sql_port"); LISTEN+=("$listen_port"); done
JOIN=$(printf '127.0.0.1:%s,' "${LISTEN[@]:0:3}"); JOIN=${JOIN%,}
start_node() { # start_node INDEX
  local i=$1
  SHOAL_LOG=warn "$SHOAL" start --store "$WORK/shoal$((i+1))" --sql-addr "127.0.0.1:${SQL[$i]}" \
    --listen-addr "127.0.0.1:${LISTEN[$i]}" --join "$JOIN" >"$WORK/shoal$((i+1)).log" 2>&1 &
  PIDS+=($!)
}
for i in 0 1 2; do start_node "$i"; done
for i in 0 1 2; do wait_port "${LISTEN[$i]}"; done
timeout 60 "$SHOAL" init --host "127.0.0.1:${LISTEN[0]}" >/dev/null
for i in 0 1 2; do wait_port "${SQL[$i]}"; done
for _ in $(seq 300); do sql "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done

log "loading $ROWS rows of ~$VALUE_BYTES bytes (ranges split at $MAX_BYTES bytes)"
sql "CREATE TABLE big (k bigint PRIMARY KEY, v text)"
sql "ALTER TABLE big CONFIGURE ZONE USING range_max_bytes = $MAX_BYTES"
LOAD_START=$(date +%s.%N)
for ((from = 1; from <= ROWS; from += BATCH)); do
  to=$(( from + BATCH - 1 < ROWS ? from + BATCH - 1 : ROWS ))
  for attempt in 1 2 3; do
    sql "INSERT INTO big SELECT n, md5(n::text) || repeat('x', $((VALUE_BYTES - 32))) FROM generate_series($from, $to) AS g(n)" \
      >/dev/null && break
    (( attempt == 3 )) && die "loading rows $from..$to failed"
    sleep 1
  done
done
LOAD_SECS=$(awk -v a="$LOAD_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
CHECK="SELECT count(*), sum(k), sum(length(v)) FROM big"
BEFORE=$(sql "$CHECK")

# Splits settle: the range count stops growing for 5 s.
last=0 same=0
for _ in $(seq 600); do
  n=$(sql "SELECT count(*) FROM shoal_internal.ranges" 2>/dev/null || echo 0)
  if [[ $n == "$last" ]]; then same=$((same + 1)); else same=0; last=$n; fi
  (( same >= 5 )) && break
  sleep 1
done
RANGES=$last
TOTAL_BYTES=$(sql "SELECT sum(range_size_bytes) FROM shoal_internal.ranges")
log "$RANGES ranges, $TOTAL_BYTES bytes (one replica); adding a fourth node"

# Node counts as "id replicas leases" lines.
counts() { sql "SELECT node_id, replicas, leases FROM shoal_internal.nodes WHERE is_live ORDER BY node_id" | tr '|' ' '; }
balanced() { # balanced: four live nodes, replicas and leases within ±15% of the mean
  counts | awk '
    { n++; r[n] = $2; l[n] = $3; sr += $2; sl += $3 }
    END {
      if (n != 4) exit 1
      mr = sr / n; ml = sl / n
      for (i = 1; i <= n; i++) {
        if (r[i] - mr > 0.15 * mr || mr - r[i] > 0.15 * mr) exit 1
        if (l[i] - ml > 0.15 * ml || ml - l[i] > 0.15 * ml) exit 1
      }
    }'
}
COUNTS_BEFORE=$(counts | tr '\n' ';')
T0=$(date +%s.%N)
start_node 3
BALANCED=0
for _ in $(seq 3600); do
  if balanced; then BALANCED=1; break; fi
  sleep 1
done
T1=$(date +%s.%N)
(( BALANCED )) || die "not balanced within an hour: $(counts | tr '\n' ';')"
COUNTS_AFTER=$(counts | tr '\n' ';')
NEW_ID=$(sql "SELECT node_id FROM shoal_internal.nodes WHERE address = '127.0.0.1:${LISTEN[3]}'")
MOVED=$(sql "SELECT replicas, range_size_bytes FROM shoal_internal.ranges" | awk -F'|' -v id="$NEW_ID" '
  { gsub(/[{}]/, "", $1); split($1, ids, ","); for (i in ids) if (ids[i] == id) { sum += $2; break } }
  END { printf "%d", sum }')
AFTER=$(sql "$CHECK")
[[ $BEFORE == "$AFTER" ]] || die "checksum changed: $BEFORE -> $AFTER"
SECS=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.1f", b - a }')
GIB=$(awk -v b="$MOVED" 'BEGIN { printf "%.3f", b / 1073741824 }')
PER_GIB=$(awk -v s="$SECS" -v b="$MOVED" 'BEGIN { if (b > 0) printf "%.0f", s / (b / 1073741824); else print "n/a" }')
MIBS=$(awk -v s="$SECS" -v b="$MOVED" 'BEGIN { if (s > 0) printf "%.1f", b / 1048576 / s; else print "n/a" }')

{
  echo "# Rebalancing onto a new node — $STAMP"
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)."
  echo "Shoal: $SHOAL."
  echo
  echo "| what | value |"
  echo "|---|---|"
  echo "| rows loaded (3 nodes) | $ROWS (~$VALUE_BYTES B each), in ${LOAD_SECS} s |"
  echo "| ranges (range_max_bytes = $MAX_BYTES) | $RANGES |"
  echo "| data, one replica | $TOTAL_BYTES bytes |"
  echo "| replicas/leases per node before | ${COUNTS_BEFORE} |"
  echo "| replicas/leases per node after | ${COUNTS_AFTER} |"
  echo "| moved onto the new node | $MOVED bytes ($GIB GiB) |"
  echo "| time from its start to balanced (±15%) | $SECS s |"
  echo "| **seconds per GiB moved** | **$PER_GIB** ($MIBS MiB/s) |"
  echo "| checksum before = after | $BEFORE |"
} >"$REPORT"
cat "$REPORT"
echo "[bench] report: ${REPORT#"$REPO_ROOT"/}" >&2
