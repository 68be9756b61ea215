#!/usr/bin/env bash
# benches/replication.sh — replicated writes: Shoal (3 nodes) vs Shoal
# (1 node) vs a 3-member etcd 3.4 cluster, same machine, same run.
#
# What it measures
#   Closed-loop single-write transactions at 1, 8 and 32 clients:
#     shoal-3  INSERT INTO bench (id, v) VALUES ($1, $2) (prepared,
#              autocommit), clients spread over the three nodes; each
#              acknowledged insert is in a synced Raft log on a quorum.
#     shoal-1  the same against a single-node Shoal (one synced log).
#     etcd-3   PUT of a 16-byte key and 100-byte value through etcd's v3
#              JSON gateway, clients spread over the three members; each
#              acknowledged put is in a synced WAL on a quorum.
#   For each: writes/s, p50 and p99 latency (client side, from
#   shoal-loadgen). Also the disk's fdatasync latency (4 KiB O_DSYNC
#   writes), the floor of every durable commit.
#
# How
#   Installs etcd-server (Debian, 3.4) if missing; starts the etcd cluster,
#   a Shoal cluster (3 `shoal start --join …` + `shoal init`) and a single
#   Shoal node, all on free 127.0.0.1 ports with stores in a temporary
#   directory; runs shoal-loadgen against each system at each client count;
#   writes benches/results/replication-<date>.md and prints it. Everything
#   started is stopped by pid on exit (also on failure or Ctrl-C).
#
# Usage
#   benches/replication.sh [--smoke]      (--smoke: 1 and 8 clients, 3 s)
#   Environment: SHOAL_BIN, LOADGEN_BIN, BENCH_CLIENTS (default "1 8 32"),
#   BENCH_TIME (seconds per run, default 15), BENCH_TMPDIR.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benches/lib.sh
source "$REPO_ROOT/benches/lib.sh"
smoke_flag "$0" "$@"
if (( SMOKE )); then
  CLIENTS=${BENCH_CLIENTS:-"1 8"} RUN_TIME=${BENCH_TIME:-3}
else
  CLIENTS=${BENCH_CLIENTS:-"1 8 32"} RUN_TIME=${BENCH_TIME:-15}
fi

RESULTS_DIR=$REPO_ROOT/benches/results
STAMP=$(date -u +%Y%m%d-%H%M%S)
(( SMOKE )) && STAMP=$STAMP-smoke
REPORT=$RESULTS_DIR/replication-$STAMP.md

command -v etcd >/dev/null 2>&1 || install_debs etcd-server
command -v etcd >/dev/null 2>&1 || die "etcd not found after installing etcd-server"
SHOAL=$(find_shoal_bin)
LOADGEN=${LOADGEN_BIN:-$(dirname "$SHOAL")/shoal-loadgen}
[[ -x $LOADGEN ]] || die "no shoal-loadgen next to $SHOAL (cargo build --workspace), or set LOADGEN_BIN"

WORK=$(mktemp -d ${BENCH_TMPDIR:+-p "$BENCH_TMPDIR"})
PIDS=()
cleanup() {
  local rc=$? pid
  set +e
  for pid in "${PIDS[@]}"; do stop_pid "$pid" "server"; done
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- etcd: three members ----------------------------------------------------
ETCD_CLIENT=() ETCD_PEER=()
for i in 1 2 3; do pick_port client_port; pick_port peer_port; ETCD_CLIENT+=("$client_port"); ETCD_PEER+=("$peer_port"); done
INITIAL=""
for i in 0 1 2; do INITIAL+="${INITIAL:+,}e$((i+1))=http://127.0.0.1:${ETCD_PEER[$i]}"; done
for i in 0 1 2; do
  etcd --name "e$((i+1))" --data-dir "$WORK/etcd$((i+1))" \
    --listen-client-urls "http://127.0.0.1:${ETCD_CLIENT[$i]}" \
    --advertise-client-urls "http://127.0.0.1:${ETCD_CLIENT[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${ETCD_PEER[$i]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER[$i]}" \
    --initial-cluster "$INITIAL" --initial-cluster-state new \
    --initial-cluster-token shoal-bench >"$WORK/etcd$((i+1)).log" 2>&1 &
  PIDS+=($!)
done
for c in "${ETCD_CLIENT[@]}"; do wait_port "$c"; done

# --- Shoal: three nodes, and one alone --------------------------------------
SQL=() LISTEN=()
for i in 1 2 3; do pick_port sql_port; pick_port listen_port; SQL+=("$sql_port"); LISTEN+=("$listen_port"); done
JOIN=$(printf '127.0.0.1:%s,' "${LISTEN[@]}"); JOIN=${JOIN%,}
for i in 0 1 2; do
  SHOAL_LOG=warn "$SHOAL" start --store "$WORK/shoal$((i+1))" --sql-addr "127.0.0.1:${SQL[$i]}" \
    --listen-addr "127.0.0.1:${LISTEN[$i]}" --join "$JOIN" >"$WORK/shoal$((i+1)).log" 2>&1 &
  PIDS+=($!)
done
for l in "${LISTEN[@]}"; do wait_port "$l"; done
timeout 60 "$SHOAL" init --host "127.0.0.1:${LISTEN[0]}" >/dev/null
for s in "${SQL[@]}"; do wait_port "$s"; done
pick_port SOLO_SQL; pick_port SOLO_LISTEN
SHOAL_LOG=warn "$SHOAL" start --store "$WORK/solo" --sql-addr "127.0.0.1:$SOLO_SQL" \
  --listen-addr "127.0.0.1:$SOLO_LISTEN" >"$WORK/solo.log" 2>&1 &
PIDS+=($!)
wait_port "$SOLO_SQL"

conn() { echo "host=127.0.0.1 port=$1 user=shoal dbname=shoal"; }
for port in "${SQL[0]}" "$SOLO_SQL"; do
  timeout 60 psql -q "$(conn "$port")" -c "CREATE TABLE bench (id bigint PRIMARY KEY, v text)" >/dev/null
done
# The cluster replicates to all three nodes before anything is measured:
# every node answers a read of the table from its own replica.
for s in "${SQL[@]}"; do
  for _ in $(seq 300); do
    n=$(timeout 5 psql -At "$(conn "$s")" -c "SELECT count(*) FROM bench" 2>/dev/null || true)
    [[ $n == 0 ]] && break
    sleep 0.2
  done
  [[ $n == 0 ]] || die "node at $s never served the table"
done

# --- Runs ------------------------------------------------------------------
declare -A RESULT
OFFSET=0
run() { # run NAME CLIENTS loadgen-args...
  local name=$1 clients=$2; shift 2
  OFFSET=$((OFFSET + 100000000))
  log "$name, $clients clients, ${RUN_TIME}s"
  RESULT[$name/$clients]=$(timeout $((RUN_TIME + 120)) "$LOADGEN" --clients "$clients" \
    --seconds "$RUN_TIME" --offset "$OFFSET" "$@" || echo '{}')
}
for clients in $CLIENTS; do
  args=(); for s in "${SQL[@]}"; do args+=(--conn "$(conn "$s")"); done
  run shoal-3 "$clients" pg "${args[@]}"
  run shoal-1 "$clients" pg --conn "$(conn "$SOLO_SQL")"
  args=(); for c in "${ETCD_CLIENT[@]}"; do args+=(--endpoint "127.0.0.1:$c"); done
  run etcd-3 "$clients" etcd "${args[@]}"
done
FSYNC_APPEND_MS=$(dsync_ms "$WORK/fsync-probe")
FSYNC_OVERWRITE_MS=$(dsync_ms "$WORK/fsync-probe" notrunc)

field() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" <<<"${RESULT[$1]:-}" | tr -d '"'; }
fmt() { awk -v v="$1" 'BEGIN { if (v == "" || v == "null") print "—"; else printf "%.1f", v }'; }

mkdir -p "$RESULTS_DIR"
{
  echo "# Replicated writes — $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "- machine: $(nproc) cores, $(uname -sr); load average before runs: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- shoal: $("$SHOAL" --version) ($( [[ $SHOAL == */release/* ]] && echo "release build" || echo "DEBUG BUILD: not a measurement")), commit $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- etcd: $(etcd --version | head -n1)"
  echo "- ${RUN_TIME}s per run; closed loop (each client waits for its ack)"
  echo "- fdatasync floor (4 KiB O_DSYNC): append ${FSYNC_APPEND_MS} ms, overwrite ${FSYNC_OVERWRITE_MS} ms"
  echo
  echo "| clients | system | writes/s | p50 ms | p99 ms | errors |"
  echo "|---:|---|---:|---:|---:|---:|"
  for clients in $CLIENTS; do
    for name in shoal-3 shoal-1 etcd-3; do
      k=$name/$clients
      echo "| $clients | $name | $(fmt "$(field "$k" writes_per_sec)") | $(fmt "$(field "$k" p50_ms)") | $(fmt "$(field "$k" p99_ms)") | $(field "$k" errors) |"
    done
  done
  # Every failed write is a finding: say what the first one was.
  for clients in $CLIENTS; do
    for name in shoal-3 shoal-1 etcd-3; do
      k=$name/$clients
      first=$(sed -n 's/.*"first_error":"\([^"]*\)".*/\1/p' <<<"${RESULT[$k]:-}")
      [[ -n $first ]] && echo && echo "- $name, $clients clients, first error: $first"
    done
  done
} >"$REPORT"
cat "$REPORT"
