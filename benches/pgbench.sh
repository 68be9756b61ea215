#!/usr/bin/env bash
# benches/pgbench.sh — pgbench's built-in workloads: Shoal against
# PostgreSQL, same machine, same run.
#
# What it measures
#   PostgreSQL 15's pgbench (`pgbench -i -s 10`: 10 branches, 100 tellers,
#   1,000,000 accounts) against a throwaway PostgreSQL cluster and a
#   throwaway single Shoal node, one after the other, at 1, 8 and 32 clients,
#   prepared statements:
#     tpcb-like      BEGIN; UPDATE pgbench_accounts, SELECT its balance,
#                    UPDATE pgbench_tellers, UPDATE pgbench_branches,
#                    INSERT INTO pgbench_history; END — pgbench's default.
#     simple-update  the same without the tellers and branches updates.
#     select-only    one SELECT of an account's balance.
#   For every run: transactions/s, latency (pgbench's average; p50/p95/p99
#   of the successful transactions from pgbench's per-transaction log),
#   failed transactions (serialization failures and deadlocks that were
#   still failing after --max-tries attempts) and retries, the server's CPU
#   time per transaction (/proc) and fsync + fdatasync calls per transaction
#   (perf, machine-wide). After every tpcb-like run it checks the TPC-B
#   invariant on both databases: sum(abalance) of pgbench_accounts =
#   sum(bbalance) of pgbench_branches = sum(tbalance) of pgbench_tellers =
#   sum(delta) of pgbench_history; after simple-update the part that still
#   holds (accounts = history, branches = tellers); and after every write
#   run that pgbench_history has one row per committed transaction.
#
# How
#   Installs postgresql, gnuplot-nox and linux-perf if missing; starts both
#   servers on free 127.0.0.1 ports with stores in a temporary directory;
#   `pgbench -i -s SCALE` on both (the default init steps: drop, create
#   tables, client-side COPY, vacuum, primary keys); then a CHECKPOINT on
#   PostgreSQL and, on Shoal, a wait for its background work to end. The
#   runs use `pgbench -n` (no vacuum before a run: pgbench would also
#   truncate pgbench_history, which the invariant needs); tpcb-like runs
#   first, so the full invariant holds after each of its runs. Writes
#   benches/results/pgbench-<date>.md (raw outputs, server logs and the PNG
#   charts in benches/results/pgbench-<date>/) and prints it. Both servers
#   are stopped (pg_ctl; Shoal by its pid) and the temporary directory
#   removed on exit. Exits non-zero if a step failed on PostgreSQL (the
#   harness is broken), an invariant is broken on either database, or the
#   charts were not drawn; a run failing on Shoal only is reported, with its
#   error, not fatal.
#
# Usage
#   benches/pgbench.sh [--smoke] [--postgres-only]
#     --smoke   scale 1 (100,000 accounts), 1 client, 3 s per run
#   Defaults: scale 10, 1, 8 and 32 clients, 20 s per run.
#   Environment: SHOAL_BIN, PG_BINDIR, BENCH_SCALE, BENCH_CLIENTS,
#   BENCH_TIME, BENCH_MAX_TRIES (default 10), BENCH_TMPDIR.
#   Only loopback addresses are used; every step has a time bound.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benches/lib.sh
source "$REPO_ROOT/benches/lib.sh"
# shellcheck source=benches/servers.sh
source "$REPO_ROOT/benches/servers.sh"
# shellcheck source=benches/report.sh
source "$REPO_ROOT/benches/report.sh"
POSTGRES_ONLY=0
smoke_flag "$0" "$@"

if (( SMOKE )); then
  SCALE=${BENCH_SCALE:-1} CLIENTS=${BENCH_CLIENTS:-1} RUN_TIME=${BENCH_TIME:-3}
  SETTLE_TIMEOUT=20
else
  SCALE=${BENCH_SCALE:-10} CLIENTS=${BENCH_CLIENTS:-"1 8 32"} RUN_TIME=${BENCH_TIME:-20}
  SETTLE_TIMEOUT=180
fi
WORKLOADS="tpcb-like simple-update select-only"
MAX_TRIES=${BENCH_MAX_TRIES:-10}
LOAD_TIMEOUT=1800   # seconds allowed for pgbench -i on one database
READY_TIMEOUT=60

need_debs postgresql postgresql-client:psql gnuplot-nox:gnuplot linux-perf:perf
PG_BIN=$(find_pg_bindir)
PGBENCH=$PG_BIN/pgbench
[[ -x $PGBENCH ]] || die "no pgbench in $PG_BIN"
SHOAL_BIN_ABS=""
(( POSTGRES_ONLY )) || SHOAL_BIN_ABS=$(find_shoal_bin)

bench_init pgbench

declare -A LOAD_SECS=() FAILED=() DEADLOCKS=() RETRIED=() RETRIES=() INV=() COMMITTED=() COUNT_OK=()

pgb_errors() {
  local e
  e=$(grep -E 'error|ERROR|FATAL|DETAIL|detail' "$1" | cut -c1-300 | head -n 4 | tr '\n' ' ' || true)
  echo "${e:-pgbench exited with an error or timed out (see $(basename "$1"))}"
}

# init NAME: pgbench -i on one database. Sets LOAD_SECS[NAME]; on failure
# FAIL[load-NAME] has pgbench's error.
init() {
  local name=$1 out="$LOG_DIR/init-$1.txt" t0 t1
  log "pgbench -i -s $SCALE: $name"
  t0=$(date +%s.%N)
  if ! timeout --kill-after=10 "$LOAD_TIMEOUT" "$PGBENCH" -i -s "$SCALE" "$(conn_of "$name")" >"$out" 2>&1; then
    FAIL[load-$name]="pgbench -i failed: $(pgb_errors "$out")"
    return 1
  fi
  t1=$(date +%s.%N)
  LOAD_SECS[$name]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
}

# run NAME WORKLOAD CLIENTS
run() {
  local name=$1 w=$2 c=$3 key="$2|$3|$1" out="$LOG_DIR/$2-c$3-$1.txt" rc=0 n
  log "$w, $c client(s), ${RUN_TIME}s: $name"
  rm -f "$WORK"/txlog.*
  measure "$name" "$key" timeout --kill-after=10 $(( RUN_TIME + 120 )) "$PGBENCH" "$(conn_of "$name")" \
    -n -M prepared -b "$w" -c "$c" -j "$(( c < $(nproc) ? c : $(nproc) ))" -T "$RUN_TIME" \
    --max-tries="$MAX_TRIES" --failures-detailed -l --log-prefix="$WORK/txlog" >"$out" 2>&1 || rc=$?
  n=$(out_field 'number of transactions actually processed: \([0-9]*\).*' "$out")
  TXNS[$key]=$n
  [[ $w == select-only ]] || COMMITTED[$name]=$(( ${COMMITTED[$name]:-0} + ${n:-0} ))
  if (( rc )) || [[ -z $n ]]; then
    FAIL[$key]=$(pgb_errors "$out")
    COUNT_OK[$name]=no   # an aborted run's last commits may be unacknowledged
    return 0
  fi
  TPS[$key]=$(awk -v t="$(out_field 'tps = \([0-9.]*\) .*' "$out")" 'BEGIN { printf "%.1f", t }')
  AVG[$key]=$(out_field 'latency average = \([0-9.]*\) ms.*' "$out")
  FAILED[$key]=$(out_field 'number of failed transactions: \([0-9]*\) .*' "$out")
  DEADLOCKS[$key]=$(out_field 'number of deadlock failures: \([0-9]*\) .*' "$out")
  RETRIED[$key]=$(out_field 'number of transactions retried: \([0-9]*\) .*' "$out")
  RETRIES[$key]=$(out_field 'total number of retries: \([0-9]*\).*' "$out")
  # The per-transaction log: "client txno latency_us script epoch epoch_us
  # retries"; a failed transaction has a word instead of its latency.
  read -r "P50[$key]" "P95[$key]" "P99[$key]" < <(cat "$WORK"/txlog.* 2>/dev/null |
    awk '$3 ~ /^[0-9]+$/ { print $3 }' | sort -n | uniq -c |
    awk '{ printf "%.3f %d\n", $2 / 1000, $1 }' | pcts "50 95 99") || true
  rm -f "$WORK"/txlog.*
}

# check NAME WORKLOAD CLIENTS: the balances after a write run.
INVARIANT_BROKEN=0
SIMPLE_UPDATE_RAN=0
check() {
  local name=$1 key="$2|$3|$1" s a b t h n bad=""
  if ! s=$(psql_run "$(conn_of "$name")" 600 -c "SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(bbalance) FROM pgbench_branches), (SELECT sum(tbalance) FROM pgbench_tellers), (SELECT coalesce(sum(delta), 0) FROM pgbench_history), (SELECT count(*) FROM pgbench_history)" 2>&1); then
    INV[$key]="FAIL: the check query failed: $(tr '\n' ' ' <<<"$s")"
    INVARIANT_BROKEN=1
    return 0
  fi
  IFS='|' read -r a b t h n <<<"$s"
  [[ $b == "$t" ]] || bad+=" branches ≠ tellers;"
  [[ $a == "$h" ]] || bad+=" accounts ≠ history;"
  (( SIMPLE_UPDATE_RAN )) || [[ $a == "$b" ]] || bad+=" accounts ≠ branches;"
  if [[ ${COUNT_OK[$name]:-yes} == yes && $n != "${COMMITTED[$name]:-0}" ]]; then
    bad+=" $n history rows for ${COMMITTED[$name]:-0} committed transactions;"
  fi
  if [[ -n $bad ]]; then
    INV[$key]="FAIL:${bad%;} (accounts $a, branches $b, tellers $t, history $h)"
    INVARIANT_BROKEN=1
  else
    INV[$key]="pass ($a)"
  fi
}

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

failed_cell() {
  ok_run "$1" || { echo "—"; return; }
  awk -v f="${FAILED[$1]:-0}" -v d="${DEADLOCKS[$1]:-0}" -v n="${TXNS[$1]:-0}" 'BEGIN {
    printf "%d (%.1f%%%s)", f, (f + n > 0 ? 100 * f / (f + n) : 0), (d > 0 ? sprintf(", %d deadlocks", d) : "") }'
}
retries_cell() { ok_run "$1" && echo "${RETRIES[$1]:-0} (${RETRIED[$1]:-0} txns)" || echo "—"; }
extra_cells() { echo "$(failed_cell "$1") | $(failed_cell "$2") | $(retries_cell "$1") | $(retries_cell "$2") |"; }

write_report() {
  local s w c
  {
    report_header "pgbench: Shoal vs PostgreSQL"
    echo "- mode: $( (( SMOKE )) && echo "smoke" || echo "full"); scale $SCALE ($(( SCALE * 100000 )) accounts); clients: $CLIENTS; ${RUN_TIME}s per run; workloads (in run order): $WORKLOADS"
    echo "- pgbench: $("$PGBENCH" --version | awk '{ print $3 }'), -M prepared, -n, --max-tries=$MAX_TRIES; PostgreSQL at READ COMMITTED (its default), Shoal SERIALIZABLE (its default)"
    echo
    fsync_floor_md
    echo
    echo "## Load (pgbench -i -s $SCALE)"
    echo
    echo "| database | seconds |"
    echo "|---|---:|"
    for s in $SERVERS; do
      (( POSTGRES_ONLY )) && [[ $s == Shoal ]] && continue
      echo "| $s | ${LOAD_SECS[$s]:-failed} |"
    done
    echo
    echo "## Invariants"
    echo
    echo "After each tpcb-like run: sum(abalance) = sum(bbalance) = sum(tbalance) = sum(delta) of pgbench_history (the common value in parentheses). After simple-update (which moves only accounts and history): accounts = history and branches = tellers. After every write run: pgbench_history has one row per transaction pgbench counted as committed."
    echo
    echo "| workload | clients | PostgreSQL | Shoal |"
    echo "|---|---:|---|---|"
    for w in $WORKLOADS; do
      [[ $w == select-only ]] && continue
      for c in $CLIENTS; do
        echo "| $w | $c | ${INV[$w|$c|PostgreSQL]:-—} | ${INV[$w|$c|Shoal]:-—} |"
      done
    done
    echo
    results_md clients "| failed PG | failed Shoal | retries PG | retries Shoal |" extra_cells
    echo
    charts_md pgbench clients
    failures_md
    echo
    echo "Raw pgbench outputs, server logs and charts: \`benches/results/$REPORT_NAME-$STAMP/\`."
  } >"$REPORT"
}

# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

start_servers

load_both init
psql_run "$PG_CONN" 600 -c 'CHECKPOINT' >/dev/null
(( SHOAL_OK )) && settle_shoal

# run_and_check NAME WORKLOAD CLIENTS: a run, then the invariants.
run_and_check() {
  [[ $2 == simple-update ]] && SIMPLE_UPDATE_RAN=1
  run "$@"
  [[ $2 == select-only ]] || check "$@"
}
each_run run_and_check

write_report
finish_report "an invariant is broken (see the report's Invariants)"
