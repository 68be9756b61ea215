#!/usr/bin/env bash
# benches/sysbench.sh — sysbench OLTP: Shoal against PostgreSQL, same
# machine, same run.
#
# What it measures
#   Five stock sysbench 1.0.20 workloads (--db-driver=pgsql, server-side
#   prepared statements), each against a throwaway PostgreSQL 15 cluster and
#   a throwaway single Shoal node, one after the other, at each thread count:
#     oltp_point_select  SELECT c FROM sbtestN WHERE id = $1, one per
#                        autocommit transaction: the read path.
#     oltp_read_only     BEGIN; 10 point selects; 4 range selects on id
#                        (plain, SUM, ORDER BY, DISTINCT; 100 rows each); COMMIT.
#     oltp_read_write    oltp_read_only plus UPDATE of k (indexed), UPDATE of
#                        c, DELETE and INSERT of one row, in one transaction.
#     oltp_update_index  UPDATE sbtestN SET k = k + 1 WHERE id = $1,
#                        autocommit: a durable write that moves a secondary
#                        index entry.
#     oltp_insert        INSERT INTO sbtestN (k, c, pad) VALUES (…), id from
#                        the SERIAL sequence, autocommit: the durable-commit
#                        path.
#     oltp_read_write@rc, oltp_read_write@serializable
#                        oltp_read_write with both servers at one isolation
#                        level (default_transaction_isolation through
#                        PGOPTIONS): plain oltp_read_write compares each
#                        server's default, READ COMMITTED for PostgreSQL and
#                        SERIALIZABLE for Shoal. Any workload takes @rc, @rr
#                        or @serializable.
#   For every run: transactions/s, latency (avg, p50, p95, p99 — p50/p95
#   from sysbench's latency histogram, p99 its own --percentile=99), errors
#   sysbench retried past (40001, 40P01, 23505), the server's CPU time per
#   transaction (/proc) and fsync + fdatasync calls per transaction
#   (perf, machine-wide). Both servers commit durably (PostgreSQL:
#   fsync=on, synchronous_commit=on); the script also times 4 KiB O_DSYNC
#   writes on the file system holding both stores, the floor of a durable
#   commit.
#
# How
#   1. Installs the Debian packages sysbench, postgresql, gnuplot-nox and
#      linux-perf if missing.
#   2. initdb's a PostgreSQL cluster into a temporary directory (as the
#      `postgres` OS user when run as root), trust auth, 127.0.0.1 only, on a
#      free port; starts `shoal start` on two more free loopback ports.
#   3. `sysbench oltp_common prepare` on both: sysbench's own schema (id
#      SERIAL PRIMARY KEY, k, c, pad, CREATE INDEX k_N ON sbtestN(k)) and
#      rows; then VACUUM ANALYZE + CHECKPOINT on PostgreSQL, and on Shoal a
#      wait for its background work to end.
#   4. Runs each workload × thread count against PostgreSQL, then Shoal,
#      and afterwards checks that every acknowledged insert is there.
#   5. Writes benches/results/sysbench-<date>.md (raw outputs, server logs
#      and the PNG charts in benches/results/sysbench-<date>/) and prints it.
#   Both servers are stopped (pg_ctl stop; Shoal by its pid) and the
#   temporary directory removed on exit, also on failure or Ctrl-C.
#   Exits non-zero if a run failed on PostgreSQL (the harness is broken),
#   a database lost acknowledged inserts, or the charts were not drawn; a
#   run failing on Shoal only is reported, with its error, not fatal.
#
# Usage
#   benches/sysbench.sh [--smoke] [--postgres-only]
#     --smoke          4 tables × 1000 rows, 1 thread, 3 s per run
#     --postgres-only  skip Shoal (e.g. to check the harness without a build)
#   Defaults: 4 tables × 100000 rows, 1, 8 and 32 threads, 20 s per run.
#   Environment overrides: SHOAL_BIN, BENCH_TABLES, BENCH_TABLE_SIZE,
#   BENCH_THREADS (e.g. "1 8 32"), BENCH_TIME (seconds), BENCH_TMPDIR (where
#   the stores live; default: mktemp's default), PG_BINDIR,
#   BENCH_WORKLOADS (default: the five above),
#   BENCH_RANGE_MAX_BYTES (Shoal: give each table this range_max_bytes and
#   wait until its ranges have split before measuring), BENCH_REPORT_NAME
#   (the report's name prefix, default "sysbench").
#   Every run also times a full scan of each table (count and sum) on both
#   databases.
#   The Shoal binary defaults to $CARGO_TARGET_DIR/release/shoal, then
#   $HOME/.cache/shoal/target/release/shoal, then .../debug/shoal.
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
  TABLES=${BENCH_TABLES:-4} TABLE_SIZE=${BENCH_TABLE_SIZE:-1000}
  THREADS=${BENCH_THREADS:-1} RUN_TIME=${BENCH_TIME:-3}
  SETTLE_TIMEOUT=20
else
  TABLES=${BENCH_TABLES:-4} TABLE_SIZE=${BENCH_TABLE_SIZE:-100000}
  THREADS=${BENCH_THREADS:-"1 8 32"} RUN_TIME=${BENCH_TIME:-20}
  SETTLE_TIMEOUT=180  # seconds allowed for Shoal's background work after loading
fi
WORKLOADS=${BENCH_WORKLOADS:-"oltp_point_select oltp_read_only oltp_read_write oltp_read_write@rc oltp_read_write@serializable oltp_update_index oltp_insert"}
CLIENTS=$THREADS
RANGE_MAX_BYTES=${BENCH_RANGE_MAX_BYTES:-}
SPLIT_TIMEOUT=600   # seconds allowed for Shoal's ranges to reach their size
LOAD_TIMEOUT=1800   # seconds allowed for sysbench prepare on one database
READY_TIMEOUT=60    # seconds allowed for a server to accept connections
PREPARE_THREADS=$(( TABLES < $(nproc) ? TABLES : $(nproc) ))

need_debs sysbench:sysbench postgresql postgresql-client:psql gnuplot-nox:gnuplot linux-perf:perf
# (Captured first: `grep -q` closing the pipe early would fail under pipefail.)
SYSBENCH_HELP=$(sysbench --help 2>&1 || true)
grep -q '^ *pgsql - ' <<<"$SYSBENCH_HELP" ||
  die "this sysbench has no pgsql driver (see benches/README.md for the pgbench fallback)"
PG_BIN=$(find_pg_bindir)
SHOAL_BIN_ABS=""
(( POSTGRES_ONLY )) || SHOAL_BIN_ABS=$(find_shoal_bin)

bench_init "${BENCH_REPORT_NAME:-sysbench}"

# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

declare -A ROWS_AFTER=() ERRS=() LOAD_SECS=() SCAN_MS=()
SHOAL_RANGES=""

# sb_conn NAME: sysbench's connection options for server NAME, in SB_CONN.
sb_conn() {
  SB_CONN=(--db-driver=pgsql --pgsql-host=127.0.0.1)
  if [[ $1 == PostgreSQL ]]; then
    SB_CONN+=(--pgsql-port="$PG_PORT" --pgsql-user=postgres --pgsql-db=postgres)
  else
    SB_CONN+=(--pgsql-port="$SHOAL_PORT" --pgsql-user=shoal --pgsql-db=shoal)
  fi
  SB_CONN+=(--tables="$TABLES" --table-size="$TABLE_SIZE")
}

# sysbench's error lines (the server's message and the failing query),
# shortened: a failing bulk INSERT is thousands of characters long.
sb_errors() {
  local e
  e=$(awk '/FATAL|ALERT|[Ee]rror/ { p = 1 } p' "$1" | cut -c1-300 | head -n 6 | tr '\n' ' ' || true)
  echo "${e:-sysbench exited with an error or timed out (see $(basename "$1"))}"
}

# load NAME: sysbench prepare, then check the row counts. Sets
# LOAD_SECS[NAME]; returns non-zero (with the error in FAIL[load-NAME]) if
# the database rejects a statement.
load() {
  local name=$1 conn out="$LOG_DIR/prepare-$1.txt" t0 t1 t n
  conn=$(conn_of "$name")
  log "preparing $name: $TABLES table(s) × $TABLE_SIZE rows (sysbench oltp_common prepare)"
  sb_conn "$name"
  t0=$(date +%s.%N)
  # With --threads > 1, sysbench prepare can exit 0 after a thread's FATAL.
  if ! timeout --kill-after=10 "$LOAD_TIMEOUT" sysbench oltp_common "${SB_CONN[@]}" \
      --threads="$PREPARE_THREADS" prepare >"$out" 2>&1 || grep -q FATAL "$out"; then
    FAIL[load-$name]="sysbench prepare failed: $(sb_errors "$out")"
    return 1
  fi
  t1=$(date +%s.%N)
  for (( t = 1; t <= TABLES; t++ )); do
    if ! n=$(psql_run "$conn" 60 -c "SELECT count(*) FROM sbtest$t" 2>&1); then
      FAIL[load-$name]="SELECT count(*) FROM sbtest$t failed: $n"
      return 1
    fi
    if [[ $n != "$TABLE_SIZE" ]]; then
      FAIL[load-$name]="sbtest$t has $n rows after loading, expected $TABLE_SIZE"
      return 1
    fi
  done
  LOAD_SECS[$name]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
}

# split_ranges: give Shoal's tables RANGE_MAX_BYTES and wait until no range
# of theirs is bigger and the count has stopped changing. Sets SHOAL_RANGES.
split_ranges() {
  local t deadline=$(( SECONDS + SPLIT_TIMEOUT )) last="" now stable=0
  for (( t = 1; t <= TABLES; t++ )); do
    psql_run "$SHOAL_CONN" 60 -c "ALTER TABLE sbtest$t CONFIGURE ZONE USING range_max_bytes = $RANGE_MAX_BYTES" >/dev/null ||
      { FAIL[split]="CONFIGURE ZONE failed"; return 1; }
  done
  log "waiting for Shoal's ranges to split to at most $RANGE_MAX_BYTES bytes"
  while (( SECONDS < deadline )); do
    now=$(psql_run "$SHOAL_CONN" 60 -c "SELECT count(*) || ' ' || coalesce(max(range_size_bytes), 0) FROM shoal_internal.ranges WHERE start_key LIKE '/Table/%'" 2>/dev/null || true)
    if [[ -n $now && ${now#* } -le $RANGE_MAX_BYTES && $now == "$last" ]]; then
      stable=$(( stable + 1 ))
      (( stable >= 3 )) && { SHOAL_RANGES=${now%% *}; return 0; }
    else
      stable=0
    fi
    last=$now
    sleep 1
  done
  FAIL[split]="ranges still above $RANGE_MAX_BYTES bytes after ${SPLIT_TIMEOUT}s ($last)"
  return 1
}

# scan NAME CONNINFO: the best of three full scans (count and sum of every
# table), in ms. Sets SCAN_MS[NAME].
scan() {
  local name=$1 conn=$2 best="" i t0 t1 ms t
  for i in 1 2 3; do
    t0=$(date +%s%N)
    for (( t = 1; t <= TABLES; t++ )); do
      psql_run "$conn" 600 -c "SELECT count(*), sum(k) FROM sbtest$t" >/dev/null ||
        { FAIL[scan-$name]="SELECT count(*), sum(k) FROM sbtest$t failed"; return 0; }
    done
    t1=$(date +%s%N)
    ms=$(( (t1 - t0) / 1000000 ))
    [[ -z $best || $ms -lt $best ]] && best=$ms
  done
  SCAN_MS[$name]=$best
}

# ---------------------------------------------------------------------------
# Benchmark runs
# ---------------------------------------------------------------------------

# isolation_of WORKLOAD: the isolation level a `workload@level` run sets
# on both servers (empty: each server's default).
isolation_of() {
  case $1 in
    *@rc) echo "read committed" ;;
    *@rr) echo "repeatable read" ;;
    *@serializable) echo "serializable" ;;
    *@*) die "unknown isolation suffix in workload $1 (use @rc, @rr or @serializable)" ;;
    *) echo "" ;;
  esac
}

# bench NAME WORKLOAD THREADS: one sysbench run. A workload named
# `oltp_x@level` runs sysbench's oltp_x with the session default
# default_transaction_isolation set to that level on the server (libpq's
# PGOPTIONS), so both databases run it at the same isolation.
bench() {
  local name=$1 workload=${2%%@*} threads=$3 key="$2|$3|$1" out="$LOG_DIR/$2-t$3-$1.txt" rc=0
  local isolation options=""
  isolation=$(isolation_of "$2")
  [[ -n $isolation ]] && options="-c default_transaction_isolation=${isolation// /\\ }"
  log "$2, $threads thread(s), ${RUN_TIME}s: $name"
  sb_conn "$name"
  PGOPTIONS=$options measure "$name" "$key" timeout --kill-after=10 $(( RUN_TIME + 60 )) sysbench "$workload" \
    "${SB_CONN[@]}" --threads="$threads" --time="$RUN_TIME" --events=0 \
    --percentile=99 --histogram=on run >"$out" 2>&1 || rc=$?
  if (( rc )); then
    FAIL[$key]=$(sb_errors "$out")
    return 0
  fi
  # sysbench 1.0 prints, after the latency histogram:
  #   transactions:   12345  (617.20 per sec.)
  #   ignored errors: 0      (0.00 per sec.)
  #   avg:            1.62
  #   99th percentile: 2.00
  TXNS[$key]=$(awk '/^ *transactions:/ { print $2 }' "$out")
  TPS[$key]=$(awk '/^ *transactions:/ { gsub(/\(/, "", $3); print $3 }' "$out")
  ERRS[$key]=$(awk '/^ *ignored errors:/ { print $3 }' "$out")
  AVG[$key]=$(awk '/^ *avg:/ { print $2 }' "$out")
  P99[$key]=$(awk '/^ *99th percentile:/ { print $3 }' "$out")
  read -r "P50[$key]" "P95[$key]" < <(awk '
      /^Latency histogram/ { h = 1; next }
      h && /^ *[0-9.]+ \|/ { print $1, $NF }
      h && /^ *$/ { exit }' "$out" | pcts "50 95") || true
  [[ -n ${TPS[$key]} ]] || FAIL[$key]="no throughput in sysbench output (see $(basename "$out"))"
}

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

# count_rows NAME CONNINFO: after the runs, every acknowledged insert must be
# there — the loaded rows plus one per oltp_insert transaction sysbench
# counted (oltp_read_write deletes and re-inserts a row per transaction:
# no change). A database that acknowledged writes it lost would otherwise
# just look fast.
count_rows() {
  local name=$1 conn=$2 t n total=0
  for (( t = 1; t <= TABLES; t++ )); do
    n=$(psql_run "$conn" 120 -c "SELECT count(*) FROM sbtest$t" 2>&1) || { ROWS_AFTER[$name]="count failed: $n"; return 0; }
    total=$(( total + n ))
  done
  ROWS_AFTER[$name]=$total
}

INVARIANT_BROKEN=0
rows_md() { # rows_md NAME: the acknowledged-inserts line for one database
  local name=$1 th n=$(( TABLES * TABLE_SIZE ))
  [[ -n ${ROWS_AFTER[$name]:-} ]] || return 0
  for th in $THREADS; do
    [[ " $WORKLOADS " == *" oltp_insert "* ]] || break
    if ! ok_run "oltp_insert|$th|$name"; then
      echo "- $name: not checked (an oltp_insert run failed); found ${ROWS_AFTER[$name]}"
      return 0
    fi
    n=$(( n + ${TXNS[oltp_insert|$th|$name]} ))
  done
  if [[ ${ROWS_AFTER[$name]} == "$n" ]]; then
    echo "- $name: expected $n, found $n — ok"
  else
    echo "- $name: expected $n, found ${ROWS_AFTER[$name]} — MISMATCH"
    INVARIANT_BROKEN=1
  fi
}

errs_cell() { # ignored errors, and their share of all attempts
  ok_run "$1" || { echo "—"; return; }
  awk -v e="${ERRS[$1]:-0}" -v t="${TXNS[$1]:-0}" 'BEGIN { printf "%d (%.1f%%)", e, (e + t > 0 ? 100 * e / (e + t) : 0) }'
}
errs_cells() { echo "$(errs_cell "$1") | $(errs_cell "$2") |"; }

headline_md() {
  local pk="oltp_point_select|8|PostgreSQL" sk="oltp_point_select|8|Shoal"
  if [[ " $THREADS " != *" 8 "* || " $WORKLOADS " != *" oltp_point_select "* ]]; then
    echo "**oltp_point_select p99 at 8 threads:** not measured in this run (threads: $THREADS)."
  else
    echo "**oltp_point_select p99 at 8 threads:** PostgreSQL $(val P99 "$pk") ms, Shoal $(val P99 "$sk") ms (Shoal/PostgreSQL $(ratio "$(num "$(val P99 "$sk")")" "$(num "$(val P99 "$pk")")"))."
  fi
}

write_report() {
  local pk rows=$(( TABLES * TABLE_SIZE ))
  {
    report_header "sysbench: Shoal vs PostgreSQL"
    echo "- mode: $( (( SMOKE )) && echo "smoke" || echo "full"); $TABLES table(s) × $TABLE_SIZE rows; threads: $THREADS; ${RUN_TIME}s per run; workloads: $WORKLOADS"
    echo "- sysbench: $(sysbench --version | awk '{ print $2 }'), pgsql driver, prepared statements (--db-ps-mode=auto), tables from \`sysbench oltp_common prepare\`"
    echo "- isolation: a plain workload runs at each server's default (PostgreSQL READ COMMITTED, Shoal SERIALIZABLE); \`@rc\`, \`@rr\` and \`@serializable\` runs set both servers' default_transaction_isolation to READ COMMITTED, REPEATABLE READ or SERIALIZABLE. Under SERIALIZABLE, transactions that fail with 40001 are counted as retried errors."
    echo
    headline_md
    echo
    fsync_floor_md
    echo
    echo "## Load (sysbench oltp_common prepare, $PREPARE_THREADS thread(s))"
    echo
    echo "| database | rows | seconds | rows/s |"
    echo "|---|---:|---:|---:|"
    for pk in $SERVERS; do
      (( POSTGRES_ONLY )) && [[ $pk == Shoal ]] && continue
      if [[ -n ${LOAD_SECS[$pk]:-} ]]; then
        echo "| $pk | $rows | ${LOAD_SECS[$pk]} | $(awk -v n=$rows -v s="${LOAD_SECS[$pk]}" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }') |"
      else
        echo "| $pk | $rows | failed | — |"
      fi
    done
    echo
    echo "## Full scan (best of three; count(*) and sum(k) of every table)"
    echo
    echo "| database | rows | ms | rows/s |"
    echo "|---|---:|---:|---:|"
    for pk in $SERVERS; do
      [[ -n ${SCAN_MS[$pk]:-} ]] || continue
      echo "| $pk | $rows | ${SCAN_MS[$pk]} | $(awk -v n=$rows -v ms="${SCAN_MS[$pk]}" 'BEGIN { printf "%.0f", (ms > 0 ? n * 1000 / ms : 0) }') |"
    done
    if [[ -n $SHOAL_RANGES ]]; then
      echo
      echo "Shoal's tables were split into $SHOAL_RANGES ranges of at most $RANGE_MAX_BYTES bytes (range_max_bytes) before the runs."
    fi
    echo
    echo "## Acknowledged inserts"
    echo
    echo "Rows after the runs = loaded rows + oltp_insert transactions sysbench counted."
    echo
    for pk in $SERVERS; do rows_md "$pk"; done
    echo
    results_md threads "| retried errors PG | retried errors Shoal |" errs_cells
    echo
    charts_md sysbench threads
    failures_md
    echo
    echo "Raw sysbench outputs, server logs and charts: \`benches/results/$REPORT_NAME-$STAMP/\`."
  } >"$REPORT"
}

# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

start_servers
load_both load
# A freshly loaded PostgreSQL table gets statistics and a checkpoint before
# being measured, as any operator would do after a bulk load.
psql_run "$PG_CONN" 600 -c 'VACUUM ANALYZE' -c 'CHECKPOINT' >/dev/null
if (( SHOAL_OK )) && [[ -n $RANGE_MAX_BYTES ]]; then
  split_ranges || log "Shoal: ${FAIL[split]}"
fi
# Shoal's equivalent of PostgreSQL's checkpoint: let the compactions a
# bulk load leaves behind finish before measuring.
(( SHOAL_OK )) && settle_shoal
scan PostgreSQL "$PG_CONN"
(( SHOAL_OK )) && scan Shoal "$SHOAL_CONN"

each_run bench

count_rows PostgreSQL "$PG_CONN"
shoal_alive && count_rows Shoal "$SHOAL_CONN"

write_report
finish_report "a database lost acknowledged inserts (see the report)"
