#!/usr/bin/env bash
# benches/replication.sh — replicated writes and key-value traffic: Shoal
# (3 nodes, replication factor 3) vs Shoal (1 node) vs a 3-member etcd 3.4
# cluster, same machine, same run.
#
# What it measures
#   Closed-loop clients (each waits for its answer), at 1, 8 and 32
#   clients, three workloads:
#     insert   shoal: INSERT INTO bench (id, v) VALUES ($1, $2) (prepared,
#              autocommit, a new id each time, 100-byte text);
#              etcd: PUT of a new 16-byte key, 100-byte value.
#     put      shoal: INSERT INTO kv (k, v) VALUES ($1, $2) ON CONFLICT (k)
#              DO UPDATE SET v = excluded.v on a kv(k bytea primary key,
#              v bytea) table, a random one of BENCH_KEYS keys, a 256-byte
#              value; etcd: PUT of the same key and value.
#     get      shoal: SELECT v FROM kv WHERE k = $1; etcd: a linearizable
#              range read of the key. Every key was loaded first, so a get
#              that finds nothing counts as an error.
#   Clients are spread round-robin over the members. An acknowledged write
#   is in a synced log on a quorum (shoal-3, etcd-3) or in the one node's
#   synced log (shoal-1). For each: requests/s, p50 and p99 latency (client
#   side, from shoal-loadgen), and the ratio shoal-3/etcd-3. Also the disk's
#   fdatasync latency (4 KiB O_DSYNC writes), the floor of every durable
#   commit. The issue's target: key-value puts at 32 clients, shoal-3 at
#   least 1.0x etcd-3.
#
# How
#   Installs etcd-server (Debian, 3.4) if missing; starts the etcd cluster,
#   a Shoal cluster (3 `shoal start --join …` + `shoal init`) and a single
#   Shoal node, all on free 127.0.0.1 ports with stores in a temporary
#   directory; loads BENCH_KEYS keys into each; runs shoal-loadgen against
#   each system for each workload and client count; writes
#   benches/results/replication-<date>.md and prints it. Everything started
#   is stopped by pid on exit (also on failure or Ctrl-C).
#
# Usage
#   benches/replication.sh [--smoke]      (--smoke: 1 and 8 clients, 3 s,
#                                          2000 keys)
#   Environment: SHOAL_BIN, LOADGEN_BIN, BENCH_CLIENTS (default "1 8 32"),
#   BENCH_TIME (seconds per run, default 15), BENCH_KEYS (default 100000),
#   BENCH_WORKLOADS (default "insert put get"), BENCH_TMPDIR.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benches/lib.sh
source "$REPO_ROOT/benches/lib.sh"
smoke_flag "$0" "$@"
if (( SMOKE )); then
  CLIENTS=${BENCH_CLIENTS:-"1 8"} RUN_TIME=${BENCH_TIME:-3} KEYS=${BENCH_KEYS:-2000}
else
  CLIENTS=${BENCH_CLIENTS:-"1 8 32"} RUN_TIME=${BENCH_TIME:-15} KEYS=${BENCH_KEYS:-100000}
fi
WORKLOADS=${BENCH_WORKLOADS:-"insert put get"}
SYSTEMS="shoal-3 shoal-1 etcd-3"

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
  timeout 60 psql -q "$(conn "$port")" -c "CREATE TABLE bench (id bigint PRIMARY KEY, v text)" \
    -c "CREATE TABLE kv (k bytea PRIMARY KEY, v bytea)" >/dev/null
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
target_args() { # target_args SYSTEM: loadgen's target and endpoints
  local s c
  case $1 in
    shoal-3) echo pg; for s in "${SQL[@]}"; do echo --conn; conn "$s"; done ;;
    shoal-1) echo pg; echo --conn; conn "$SOLO_SQL" ;;
    etcd-3) echo etcd; for c in "${ETCD_CLIENT[@]}"; do echo --endpoint; echo "127.0.0.1:$c"; done ;;
  esac
}
loadgen() { # loadgen SYSTEM loadgen-options...: one JSON line, {} on failure
  local system=$1 args; shift
  mapfile -t args < <(target_args "$system")
  timeout $((RUN_TIME + 300)) "$LOADGEN" --keys "$KEYS" "$@" "${args[@]}" || echo '{}'
}
# The server processes of a system, for CPU time: its members' pids.
system_pids() {
  case $1 in
    shoal-3) echo "${PIDS[@]:3:3}" ;;
    shoal-1) echo "${PIDS[6]}" ;;
    etcd-3) echo "${PIDS[@]:0:3}" ;;
  esac
}
cpu_ticks() { local pid t=0; for pid in $(system_pids "$1"); do t=$((t + $(proc_cpu_ticks "$pid"))); done; echo "$t"; }
declare -A CPU_TICKS=() FSYNCS=()
run() { # run WORKLOAD SYSTEM CLIENTS: the result, server CPU and fsyncs
  local workload=$1 system=$2 clients=$3 k=$1/$2/$3 before args
  OFFSET=$((OFFSET + 100000000))
  log "$workload, $system, $clients clients, ${RUN_TIME}s"
  mapfile -t args < <(target_args "$system")
  before=$(cpu_ticks "$system")
  fsync_counted "$WORK/perf.txt" timeout $((RUN_TIME + 300)) "$LOADGEN" --keys "$KEYS" \
    --op "$workload" --clients "$clients" --seconds "$RUN_TIME" --offset "$OFFSET" \
    "${args[@]}" >"$WORK/run.json" || echo '{}' >"$WORK/run.json"
  RESULT[$k]=$(cat "$WORK/run.json")
  CPU_TICKS[$k]=$(( $(cpu_ticks "$system") - before ))
  FSYNCS[$k]=$(fsyncs_in "$WORK/perf.txt")
}
perf_check
if [[ " $WORKLOADS " == *" get "* || " $WORKLOADS " == *" put "* ]]; then
  for system in $SYSTEMS; do
    log "loading $KEYS keys into $system"
    RESULT[load/$system]=$(loadgen "$system" --op load --clients 8)
  done
fi
for workload in $WORKLOADS; do
  for clients in $CLIENTS; do
    for system in $SYSTEMS; do run "$workload" "$system" "$clients"; done
  done
done
FSYNC_APPEND_MS=$(dsync_ms "$WORK/fsync-probe")
FSYNC_OVERWRITE_MS=$(dsync_ms "$WORK/fsync-probe" notrunc)

field() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" <<<"${RESULT[$1]:-}" | tr -d '"'; }
fmt() { awk -v v="$1" 'BEGIN { if (v == "" || v == "null") print "—"; else printf "%.1f", v }'; }
per_request() { # per_request TOTAL KEY [SCALE]: TOTAL / acknowledged requests × SCALE
  awk -v t="$1" -v n="$(field "$2" acknowledged)" -v s="${3:-1}" \
    'BEGIN { if (t == "" || n + 0 == 0) print "—"; else printf "%.3f", t * s / n }'
}
TICK_MS=$(awk -v hz="$(getconf CLK_TCK)" 'BEGIN { print 1000 / hz }')

mkdir -p "$RESULTS_DIR"
{
  echo "# Replicated writes and key-value traffic — $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "- machine: $(nproc) cores, $(uname -sr); load average before runs: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- shoal: $("$SHOAL" --version) ($( [[ $SHOAL == */release/* ]] && echo "release build" || echo "DEBUG BUILD: not a measurement")), commit $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- etcd: $(etcd --version | head -n1)"
  echo "- ${RUN_TIME}s per run; closed loop (each client waits for its answer); $KEYS keys for put/get"
  echo "- fdatasync floor (4 KiB O_DSYNC): append ${FSYNC_APPEND_MS} ms, overwrite ${FSYNC_OVERWRITE_MS} ms"
  for system in $SYSTEMS; do
    [[ -n ${RESULT[load/$system]:-} ]] || continue
    echo "- load of $KEYS keys into $system (8 clients): $(fmt "$(field "load/$system" ops_per_sec)") puts/s, $(field "load/$system" errors) errors"
  done
  echo
  echo "CPU ms/request is the CPU time of the system's server processes (all"
  echo "members) over the run, from /proc, per acknowledged request; fsyncs/request"
  echo "counts fsync + fdatasync calls machine-wide (perf; the client makes none)."
  (( PERF_OK )) || echo "fsyncs were not counted: $PERF_NOTE."
  echo
  echo "| workload | clients | system | requests/s | p50 ms | p99 ms | errors | CPU ms/request | fsyncs/request | shoal-3/etcd-3 |"
  echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"
  for workload in $WORKLOADS; do
    for clients in $CLIENTS; do
      etcd=$(field "$workload/etcd-3/$clients" ops_per_sec)
      for system in $SYSTEMS; do
        k=$workload/$system/$clients
        r=""; [[ $system == shoal-3 ]] && r=$(ratio "$(field "$k" ops_per_sec)" "$etcd")
        echo "| $workload | $clients | $system | $(fmt "$(field "$k" ops_per_sec)") | $(fmt "$(field "$k" p50_ms)") | $(fmt "$(field "$k" p99_ms)") | $(field "$k" errors) | $(per_request "${CPU_TICKS[$k]:-}" "$k" "$TICK_MS") | $(per_request "${FSYNCS[$k]:-}" "$k") | $r |"
      done
    done
  done
  # The issue's target, at the largest client count measured.
  top=${CLIENTS##* }
  if [[ " $WORKLOADS " == *" put "* ]]; then
    r=$(ratio "$(field "put/shoal-3/$top" ops_per_sec)" "$(field "put/etcd-3/$top" ops_per_sec)")
    verdict=$(awk -v r="$r" 'BEGIN { if (r == "—") print "not measured"; else if (r + 0 >= 1.0) print "met"; else print "NOT met" }')
    echo
    echo "Target — key-value puts, 3 nodes, $top clients: shoal-3/etcd-3 = $r (target ≥ 1.0, needs 32 clients): **$verdict**"
  fi
  # Every failed request is a finding: say what the first one was.
  for k in "${!RESULT[@]}"; do
    first=$(sed -n 's/.*"first_error":"\([^"]*\)".*/\1/p' <<<"${RESULT[$k]}")
    [[ -n $first ]] && echo && echo "- $k, first error: $first"
  done
} >"$REPORT"
cat "$REPORT"
# A smoke run (CI) fails when any request failed or a run gave no result.
if (( ${BENCH_STRICT:-$SMOKE} )); then
  for k in "${!RESULT[@]}"; do
    [[ $(field "$k" errors) == 0 ]] || die "$k: $(field "$k" errors) errors (or no result): see the report"
  done
fi
