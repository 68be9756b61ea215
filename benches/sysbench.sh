#!/usr/bin/env bash
# benches/sysbench.sh — Shoal against PostgreSQL, same machine, same run.
#
# What it measures
#   Two sysbench OLTP workloads, each against a throwaway PostgreSQL cluster
#   and a throwaway single Shoal node, one after the other, at each thread
#   count:
#     oltp_point_select  SELECT c FROM sbtestN WHERE id = $1   (prepared, one
#                        query per transaction, autocommit): the read path.
#     oltp_insert        INSERT INTO sbtestN (id, k, c, pad) VALUES (...)
#                        (client-generated ids, --auto_inc=off; one row per
#                        autocommit transaction): the durable-commit path.
#   For every run it records throughput (transactions/s; with one statement
#   per transaction this is also queries/s), average and 95th-percentile
#   latency, and errors sysbench ignored (unique violations, 40001).
#   Both servers commit durably: PostgreSQL runs with fsync=on and
#   synchronous_commit=on, Shoal fsyncs its WAL on every commit. As the
#   physical floor of a durable commit, the script also times 4 KiB O_DSYNC
#   writes on the file system that holds both stores.
#
# How
#   1. Installs the Debian packages sysbench and postgresql if missing.
#   2. initdb's a PostgreSQL cluster into a temporary directory (as the
#      `postgres` OS user when run as root), trust auth, 127.0.0.1 only, on a
#      free port; starts `shoal start` on two more free loopback ports.
#   3. Creates the sysbench tables itself, with the same schema on both
#      (Shoal has no SERIAL, DEFAULT or CREATE INDEX yet, so `sysbench
#      prepare` cannot be used), and loads identical rows (fixed seed) with
#      1000-row INSERT statements through psql.
#   4. Runs each workload × thread count against PostgreSQL, then Shoal,
#      and afterwards checks that every acknowledged insert is there.
#   5. Writes benches/results/sysbench-<date>.md (plus the raw outputs in
#      benches/results/sysbench-<date>/) and prints the report.
#   Both servers are stopped (pg_ctl stop; Shoal by its pid) and the
#   temporary directory removed on exit, also on failure or Ctrl-C.
#
# Usage
#   benches/sysbench.sh [--smoke] [--postgres-only]
#     --smoke          1 table × 1000 rows, 1 thread, 3 s per run
#     --postgres-only  skip Shoal (e.g. to check the harness without a build)
#   Defaults: 1 table × 100000 rows, 1 and 8 threads, 20 s per run.
#   Environment overrides: SHOAL_BIN, BENCH_TABLES, BENCH_TABLE_SIZE,
#   BENCH_THREADS (e.g. "1 8 32"), BENCH_TIME (seconds), BENCH_TMPDIR (where
#   the stores live; default: mktemp's default), PG_BINDIR,
#   BENCH_WORKLOADS (default "oltp_point_select oltp_insert"),
#   BENCH_RANGE_MAX_BYTES (Shoal: give each table this range_max_bytes and
#   wait until its ranges have split before measuring), BENCH_REPORT_NAME
#   (the report's name prefix, default "sysbench").
#   Every run also times a full scan of each table (count and sum) on both
#   databases.
#   The Shoal binary defaults to $CARGO_TARGET_DIR/release/shoal, then
#   $HOME/.cache/shoal/target/release/shoal, then .../debug/shoal.
#   Only loopback addresses are used; every step has a time bound.
set -euo pipefail

SMOKE=0
POSTGRES_ONLY=0
for arg in "$@"; do
  case $arg in
    --smoke) SMOKE=1 ;;
    --postgres-only) POSTGRES_ONLY=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

if (( SMOKE )); then
  TABLES=${BENCH_TABLES:-1} TABLE_SIZE=${BENCH_TABLE_SIZE:-1000}
  THREADS=${BENCH_THREADS:-1} RUN_TIME=${BENCH_TIME:-3}
else
  TABLES=${BENCH_TABLES:-1} TABLE_SIZE=${BENCH_TABLE_SIZE:-100000}
  THREADS=${BENCH_THREADS:-"1 8"} RUN_TIME=${BENCH_TIME:-20}
fi
WORKLOADS=${BENCH_WORKLOADS:-"oltp_point_select oltp_insert"}
RANGE_MAX_BYTES=${BENCH_RANGE_MAX_BYTES:-}
SPLIT_TIMEOUT=600   # seconds allowed for Shoal's ranges to reach their size
SETTLE_TIMEOUT=180  # seconds allowed for Shoal's background work after loading
BATCH=1000          # rows per INSERT statement while loading
LOAD_TIMEOUT=900    # seconds allowed for loading one database
READY_TIMEOUT=60    # seconds allowed for a server to accept connections

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS_DIR=$REPO_ROOT/benches/results
STAMP=$(date -u +%Y%m%d-%H%M%S)
(( SMOKE )) && STAMP=$STAMP-smoke
REPORT_NAME=${BENCH_REPORT_NAME:-sysbench}
REPORT=$RESULTS_DIR/$REPORT_NAME-$STAMP.md
LOG_DIR=$RESULTS_DIR/$REPORT_NAME-$STAMP

# shellcheck source=benches/lib.sh
source "$REPO_ROOT/benches/lib.sh"
# shellcheck source=benches/servers.sh
source "$REPO_ROOT/benches/servers.sh"

# ---------------------------------------------------------------------------
# Packages
# ---------------------------------------------------------------------------

ensure_packages() {
  local missing=() p
  # A package counts as present only if dpkg knows it and its command runs.
  { dpkg -s sysbench && command -v sysbench; } >/dev/null 2>&1 || missing+=(sysbench)
  dpkg -s postgresql >/dev/null 2>&1 || missing+=(postgresql)
  command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
  install_debs "${missing[@]}"
}

# ---------------------------------------------------------------------------
# Ports, processes, cleanup
# ---------------------------------------------------------------------------

WORK=""

cleanup() {
  local rc=$?
  set +e
  stop_shoal
  stop_pg
  if [[ -n $WORK && -d $WORK ]]; then
    # Keep the server logs next to the raw sysbench outputs, with the
    # temporary directory's name replaced: nothing outside the repository is
    # named in the results.
    if [[ -d $LOG_DIR ]]; then
      scrub "$WORK/pg/server.log" "$LOG_DIR/postgresql.log"
      scrub "$WORK/shoal/shoal.log" "$LOG_DIR/shoal.log"
    fi
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

# The sysbench schema without SERIAL and the secondary index on k, and rows
# shaped like sysbench's: k uniform in [1, table size], c ten and pad five
# dash-separated groups of 11 random digits. A fixed seed gives both
# databases the same rows.
generate_sql() {
  awk -v tables="$TABLES" -v size="$TABLE_SIZE" -v batch="$BATCH" -v q="'" '
    function group() { return sprintf("%05d%06d", int(rand() * 100000), int(rand() * 1000000)) }
    function digits(n,   s, i) { s = group(); for (i = 2; i <= n; i++) s = s "-" group(); return s }
    BEGIN {
      srand(20240601)
      for (t = 1; t <= tables; t++) {
        printf "CREATE TABLE sbtest%d (id integer PRIMARY KEY, k integer NOT NULL, c char(120) NOT NULL, pad char(60) NOT NULL);\n", t
        for (id = 1; id <= size; id++) {
          if ((id - 1) % batch == 0) printf "INSERT INTO sbtest%d (id, k, c, pad) VALUES\n", t
          sep = (id % batch == 0 || id == size) ? ";\n" : ",\n"
          printf "(%d, %d, %s%s%s, %s%s%s)%s", id, int(rand() * size) + 1, q, digits(10), q, q, digits(5), q, sep
        }
      }
    }'
}

# load NAME CONNINFO: create and fill the tables, check the row counts.
# Sets LOAD_SECS[NAME]; returns non-zero (with the error in FAIL[...]) if the
# database rejects a statement.
load() {
  local name=$1 conn=$2 t0 t1 t n
  log "loading $name: $TABLES table(s) × $TABLE_SIZE rows"
  t0=$(date +%s.%N)
  # From inside WORK, so that psql's messages name the file relatively.
  if ! (cd "$WORK" && psql_run "$conn" "$LOAD_TIMEOUT" -f load.sql) >"$LOG_DIR/load-$name.log" 2>&1; then
    FAIL[load-$name]="loading failed: $(failed_statement "$LOG_DIR/load-$name.log")"
    return 1
  fi
  t1=$(date +%s.%N)
  LOAD_SECS[$name]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
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
}

# The psql error of a failed -f run, with the start of the statement it
# points at (the load statements are long).
failed_statement() {
  local logf=$1 line
  line=$(grep -o '^psql:[^:]*:[0-9]*' "$logf" | head -n1 | awk -F: '{ print $3 }' || true)
  printf '%s' "$(grep -v '^$' "$logf" | head -n 3 | tr '\n' ' ' || true)"
  if [[ -n $line ]]; then
    # psql reports the statement's last line; walk back to where it starts.
    printf ' — statement: %s' "$(awk -v l="$line" 'NR <= l { if ($0 ~ /^(CREATE|INSERT)/) s = $0 } NR == l { print s; exit }' "$WORK/load.sql" | cut -c1-160)"
  fi
}

# ---------------------------------------------------------------------------
# Benchmark runs
# ---------------------------------------------------------------------------

declare -A TPS=() TXNS=() ROWS_AFTER=() AVG=() P95=() ERRS=() FAIL=() LOAD_SECS=() SCAN_MS=()
SHOAL_RANGES=""

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

# settle_shoal: waits (at most SETTLE_TIMEOUT s) until the Shoal process
# has used under 5% of a core for two seconds running — its background
# work (compactions after the load, splits) is done.
settle_shoal() {
  local deadline=$(( SECONDS + SETTLE_TIMEOUT )) before after hz
  hz=$(getconf CLK_TCK)
  log "waiting for Shoal's background work to finish"
  while (( SECONDS < deadline )); do
    before=$(awk '{ print $14 + $15 }' "/proc/$SHOAL_PID/stat" 2>/dev/null) || return 0
    sleep 2
    after=$(awk '{ print $14 + $15 }' "/proc/$SHOAL_PID/stat" 2>/dev/null) || return 0
    (( (after - before) * 100 < 2 * hz * 5 )) && return 0
  done
  log "Shoal was still busy after ${SETTLE_TIMEOUT}s; measuring anyway"
}

# scan NAME CONNINFO: the best of three full scans (count and sum of every
# table), in ms. Sets SCAN_MS[NAME].
scan() {
  local name=$1 conn=$2 best="" i t0 t1 ms t
  for i in 1 2 3; do
    t0=$(date +%s%N)
    for (( t = 1; t <= TABLES; t++ )); do
      psql_run "$conn" 600 -c "SELECT count(*), sum(k) FROM sbtest$t" >/dev/null ||
        { FAIL[scan-$name]="SELECT count(*), sum(k) failed"; return 0; }
    done
    t1=$(date +%s%N)
    ms=$(( (t1 - t0) / 1000000 ))
    [[ -z $best || $ms -lt $best ]] && best=$ms
  done
  SCAN_MS[$name]=$best
}

# bench NAME PORT USER DB WORKLOAD THREADS
bench() {
  local name=$1 port=$2 user=$3 db=$4 workload=$5 threads=$6
  local key="$workload|$threads|$name" out="$LOG_DIR/$workload-t$threads-$name.txt"
  local extra=()
  [[ $workload == oltp_insert ]] && extra+=(--auto_inc=off)
  log "$workload, $threads thread(s), ${RUN_TIME}s: $name"
  if ! timeout --kill-after=10 $(( RUN_TIME + 60 )) sysbench "$workload" \
      --db-driver=pgsql --pgsql-host=127.0.0.1 --pgsql-port="$port" \
      --pgsql-user="$user" --pgsql-db="$db" \
      --tables="$TABLES" --table-size="$TABLE_SIZE" \
      --threads="$threads" --time="$RUN_TIME" --events=0 --percentile=95 \
      "${extra[@]}" run >"$out" 2>&1; then
    FAIL[$key]="$(grep -E 'FATAL|ALERT|error' "$out" | head -n 4 | tr '\n' ' ' || true)"
    [[ -n ${FAIL[$key]} ]] || FAIL[$key]="sysbench exited with an error or timed out (see $(basename "$out"))"
    return 0
  fi
  # sysbench 1.0 prints e.g. (queries/s equals transactions/s here: one
  # statement per transaction)
  #   transactions:   12345  (617.20 per sec.)
  #   ignored errors: 0      (0.00 per sec.)
  #   avg:            1.62
  #   95th percentile: 2.00
  TXNS[$key]=$(awk '/^ *transactions:/ { print $2 }' "$out")
  TPS[$key]=$(awk '/^ *transactions:/ { gsub(/\(/, "", $3); print $3 }' "$out")
  ERRS[$key]=$(awk '/^ *ignored errors:/ { print $3 }' "$out")
  AVG[$key]=$(awk '/^ *avg:/ { print $2 }' "$out")
  P95[$key]=$(awk '/^ *95th percentile:/ { print $3 }' "$out")
  [[ -n ${TPS[$key]} ]] || FAIL[$key]="no throughput in sysbench output (see $(basename "$out"))"
}

# ---------------------------------------------------------------------------
# The physical floor: 4 KiB O_DSYNC writes (each one a write + fdatasync).
# Appending to a new file also syncs the file's growing size, like an
# appended WAL (RocksDB); overwriting does not, like PostgreSQL's
# preallocated WAL segments.
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

per_sec() { awk -v ms="$1" 'BEGIN { if (ms + 0 == 0) print "—"; else printf "%.0f", 1000 / ms }'; }
ratio() { awk -v s="$1" -v p="$2" 'BEGIN { if (s == "" || p == "" || p + 0 == 0) print "—"; else printf "%.2f", s / p }'; }
cell() { # cell KEY: "tps" or "failed"
  if [[ -n ${FAIL[$1]:-} ]]; then echo "failed"; elif [[ -n ${TPS[$1]:-} ]]; then echo "${TPS[$1]}"; else echo "—"; fi
}
lat() { [[ -n ${TPS[$1]:-} && -z ${FAIL[$1]:-} ]] && echo "${AVG[$1]} / ${P95[$1]}" || echo "—"; }

# count_rows NAME CONNINFO: after the runs, every acknowledged insert must be
# there — the loaded rows plus one per oltp_insert transaction sysbench
# counted. A database that acknowledged writes it lost would otherwise just
# look fast.
count_rows() {
  local name=$1 conn=$2 t n total=0
  for (( t = 1; t <= TABLES; t++ )); do
    n=$(psql_run "$conn" 120 -c "SELECT count(*) FROM sbtest$t" 2>&1) || { ROWS_AFTER[$name]="count failed: $n"; return 0; }
    total=$(( total + n ))
  done
  ROWS_AFTER[$name]=$total
}

expected_rows() { # expected_rows NAME
  local th n=$(( TABLES * TABLE_SIZE ))
  for th in $THREADS; do n=$(( n + ${TXNS[oltp_insert|$th|$1]:-0} )); done
  echo "$n"
}

write_report() {
  local w th pk sk fstype profile
  fstype=$(df --output=fstype "$WORK" 2>/dev/null | tail -n1 || echo "?")
  profile=$(basename "$(dirname "$SHOAL_BIN_ABS")")
  [[ $profile == release || $profile == debug ]] || profile="unknown-profile"
  {
    echo "# sysbench: Shoal vs PostgreSQL — $STAMP"
    echo
    echo "- mode: $( (( SMOKE )) && echo "smoke" || echo "full"); $TABLES table(s) × $TABLE_SIZE rows; threads: $THREADS; ${RUN_TIME}s per run; workloads: $WORKLOADS"
    echo "- machine: $(nproc) cores, Linux $(uname -r), stores on $fstype; load average before the runs: $LOADAVG"
    echo "- PostgreSQL: $("$PG_BIN/postgres" --version | sed 's/^postgres (PostgreSQL) //') (fsync=on, synchronous_commit=on, otherwise defaults)"
    if (( POSTGRES_ONLY )); then
      echo "- Shoal: skipped (--postgres-only)"
    else
      echo "- Shoal: $("$SHOAL_BIN_ABS" --version 2>/dev/null || echo shoal) ($profile build$([[ $profile == debug ]] && echo ' — NOT meaningful for speed goals; use a release build'))"
    fi
    echo "- sysbench: $(sysbench --version | awk '{ print $2 }'), pgsql driver, prepared statements (--db-ps-mode=auto)"
    echo "- commit: $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo none)$( [[ -n $(git -C "$REPO_ROOT" status --porcelain 2>/dev/null | head -n1) ]] && echo ' (with uncommitted changes)')"
    echo
    echo "## Durable-commit floor"
    echo
    echo "| 4 KiB write + fdatasync (O_DSYNC, $FSYNC_COUNT writes) | ms per write | max commits/s, one committer, no group commit |"
    echo "|---|---:|---:|"
    echo "| appending to a new file | $FSYNC_APPEND_MS | $(per_sec "$FSYNC_APPEND_MS") |"
    echo "| overwriting in place | $FSYNC_OVERWRITE_MS | $(per_sec "$FSYNC_OVERWRITE_MS") |"
    echo
    echo "## Load ($BATCH-row INSERT statements through psql)"
    echo
    echo "| database | rows | seconds | rows/s |"
    echo "|---|---:|---:|---:|"
    for pk in PostgreSQL Shoal; do
      (( POSTGRES_ONLY )) && [[ $pk == Shoal ]] && continue
      if [[ -n ${LOAD_SECS[$pk]:-} ]]; then
        echo "| $pk | $(( TABLES * TABLE_SIZE )) | ${LOAD_SECS[$pk]} | $(awk -v n=$(( TABLES * TABLE_SIZE )) -v s="${LOAD_SECS[$pk]}" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }') |"
      else
        echo "| $pk | $(( TABLES * TABLE_SIZE )) | failed | — |"
      fi
    done
    echo
    echo "## Full scan (best of three; count(*) and sum(k) of every table)"
    echo
    echo "| database | rows | ms | rows/s |"
    echo "|---|---:|---:|---:|"
    for pk in PostgreSQL Shoal; do
      [[ -n ${SCAN_MS[$pk]:-} ]] || continue
      echo "| $pk | $(( TABLES * TABLE_SIZE )) | ${SCAN_MS[$pk]} | $(awk -v n=$(( TABLES * TABLE_SIZE )) -v ms="${SCAN_MS[$pk]}" 'BEGIN { printf "%.0f", (ms > 0 ? n * 1000 / ms : 0) }') |"
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
    for pk in PostgreSQL Shoal; do
      [[ -n ${ROWS_AFTER[$pk]:-} ]] || continue
      echo "- $pk: expected $(expected_rows "$pk"), found ${ROWS_AFTER[$pk]}$([[ ${ROWS_AFTER[$pk]} == "$(expected_rows "$pk")" ]] && echo " — ok" || echo " — MISMATCH")"
    done
    echo
    echo "## Results"
    echo
    echo "tps = transactions/s = queries/s (one statement per transaction). Latencies in ms."
    echo
    echo "| workload | threads | PostgreSQL tps | Shoal tps | Shoal/PostgreSQL | PostgreSQL avg / p95 | Shoal avg / p95 | ignored errors PG / Shoal |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for w in $WORKLOADS; do
      for th in $THREADS; do
        pk="$w|$th|PostgreSQL" sk="$w|$th|Shoal"
        echo "| $w | $th | $(cell "$pk") | $(cell "$sk") | $(ratio "${TPS[$sk]:-}" "${TPS[$pk]:-}") | $(lat "$pk") | $(lat "$sk") | ${ERRS[$pk]:-—} / ${ERRS[$sk]:-—} |"
      done
    done
    if (( ${#FAIL[@]} )); then
      echo
      echo "## Failures"
      echo
      for pk in $(printf '%s\n' "${!FAIL[@]}" | sort); do
        echo "- \`$pk\`: $(tr '|' '/' <<<"${FAIL[$pk]}")"
      done
    fi
    echo
    echo "Raw sysbench outputs and server logs: \`benches/results/$REPORT_NAME-$STAMP/\`."
  } >"$REPORT"
}

# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

ensure_packages
# (Captured first: `grep -q` closing the pipe early would fail under pipefail.)
SYSBENCH_HELP=$(sysbench --help 2>&1 || true)
grep -q '^ *pgsql - ' <<<"$SYSBENCH_HELP" ||
  die "this sysbench has no pgsql driver (see benches/README.md for the pgbench fallback)"
PG_BIN=$(find_pg_bindir)
SHOAL_BIN_ABS=""
(( POSTGRES_ONLY )) || SHOAL_BIN_ABS=$(find_shoal_bin)

mkdir -p "$RESULTS_DIR" "$LOG_DIR"
if [[ -n ${BENCH_TMPDIR:-} ]]; then
  WORK=$(mktemp -d "$BENCH_TMPDIR/shoal-bench.XXXXXX")
else
  WORK=$(mktemp -d -t shoal-bench.XXXXXX)
fi
chmod 711 "$WORK"   # the postgres user must reach its data directory

# Other work on the machine skews everything; the report records how busy it was.
LOADAVG=$(uptime | sed 's/.*load average: //')

log "measuring fdatasync latency"
FSYNC_APPEND_MS=$(dsync_ms "$WORK/fsync-probe")
FSYNC_OVERWRITE_MS=$(dsync_ms "$WORK/fsync-probe" notrunc)
rm -f "$WORK/fsync-probe"

pick_port PG_PORT
pick_port SHOAL_PORT
pick_port SHOAL_LISTEN_PORT
PG_CONN="host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres"
SHOAL_CONN="host=127.0.0.1 port=$SHOAL_PORT user=shoal dbname=shoal"

log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
start_pg
SHOAL_OK=0
if (( ! POSTGRES_ONLY )); then
  log "starting Shoal ($SHOAL_BIN_ABS) on 127.0.0.1:$SHOAL_PORT"
  start_shoal
  SHOAL_OK=1
fi

generate_sql >"$WORK/load.sql"
load PostgreSQL "$PG_CONN" || die "${FAIL[load-PostgreSQL]}"
# A freshly loaded PostgreSQL table gets statistics and a checkpoint before
# being measured, as any operator would do after a bulk load.
psql_run "$PG_CONN" 600 -c 'VACUUM ANALYZE' -c 'CHECKPOINT' >/dev/null
if (( SHOAL_OK )); then
  load Shoal "$SHOAL_CONN" || { SHOAL_OK=0; log "Shoal: ${FAIL[load-Shoal]}"; }
fi
if (( SHOAL_OK )) && [[ -n $RANGE_MAX_BYTES ]]; then
  split_ranges || log "Shoal: ${FAIL[split]}"
fi
# Shoal's equivalent of PostgreSQL's checkpoint: let the compactions a
# bulk load leaves behind finish before measuring.
(( SHOAL_OK )) && settle_shoal
scan PostgreSQL "$PG_CONN"
(( SHOAL_OK )) && scan Shoal "$SHOAL_CONN"

for w in $WORKLOADS; do
  for th in $THREADS; do
    bench PostgreSQL "$PG_PORT" postgres postgres "$w" "$th"
    if (( SHOAL_OK )); then
      if ! kill -0 "$SHOAL_PID" 2>/dev/null; then
        FAIL[shoal-process]="the Shoal node exited during the run (see shoal.log)"
        SHOAL_OK=0
      else
        bench Shoal "$SHOAL_PORT" shoal shoal "$w" "$th"
      fi
    fi
  done
done

count_rows PostgreSQL "$PG_CONN"
(( SHOAL_OK )) && kill -0 "$SHOAL_PID" 2>/dev/null && count_rows Shoal "$SHOAL_CONN"

write_report
echo
cat "$REPORT"
echo
log "report: ${REPORT#"$REPO_ROOT"/}"
