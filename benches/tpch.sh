#!/usr/bin/env bash
# benches/tpch.sh — TPC-H: Shoal (one node) against PostgreSQL, same machine,
# same run.
#
# What it measures
#   The 22 TPC-H queries (benches/tpch/queries/qNN.sql, written from the
#   TPC-H specification with its validation substitution parameters) on the
#   eight TPC-H tables (benches/tpch/schema.sql: the specification's types
#   and primary keys, the same DDL on both databases), each query run on
#   PostgreSQL, then on Shoal, wall time per query (psql's \timing). Both
#   databases must return the same rows: the outputs are compared after
#   trimming fields and rounding numbers to 2 decimals. Also the load:
#   seconds and rows/s per table with COPY … FROM STDIN through psql.
#   The goal: TPC-H SF1 total query time ≤ 0.5× PostgreSQL's.
#
# How
#   1. Installs the Debian packages postgresql (and psql, python3-venv) if
#      missing, and the PyPI package tpchgen-cli (a binary wheel of the
#      Rust TPC-H generator) into a venv beside the build cache.
#   2. Generates the data at scale factor TPCH_SF as CSV into a cache
#      outside the repository (kept for later runs; regenerated if missing).
#   3. initdb's a PostgreSQL cluster into a temporary directory (as the
#      `postgres` OS user when run as root), trust auth, 127.0.0.1 only, on a
#      free port, otherwise PostgreSQL's defaults; starts `shoal start` on
#      two more free loopback ports.
#   4. Creates the tables and loads each one with COPY … FROM STDIN
#      (FORMAT csv), TPCH_COPY_ROWS rows per COPY, on both databases, and
#      checks the row counts; then VACUUM ANALYZE and a CHECKPOINT on
#      PostgreSQL (the same VACUUM ANALYZE is sent to Shoal, which accepts
#      it), and waits for Shoal's background work after the load to finish.
#   5. Runs each query (best of TPCH_RUNS) on PostgreSQL, then on Shoal,
#      each bounded by statement_timeout = TPCH_TIMEOUT (psql is killed 60 s
#      later if the server does not stop), and compares the outputs. While
#      a query runs on Shoal the node's resident memory is watched: past
#      TPCH_SHOAL_MAX_RSS_MB the query is cancelled, and a node that stays
#      above it is stopped.
#   6. Writes benches/results/tpch-<date>.md (the queries' differing
#      outputs, error texts and both server logs in
#      benches/results/tpch-<date>/) and prints the report.
#   Both servers are stopped (pg_ctl stop; Shoal by its pid) and the
#   temporary directory removed on exit, also on failure or Ctrl-C.
#   The exit status is non-zero when the harness fails: the data cannot be
#   made, PostgreSQL (the reference) fails to load or rejects a query other
#   than by timing out, or no report is written. Shoal's failures and wrong
#   results are in the report only.
#
# Usage
#   benches/tpch.sh [--smoke] [--postgres-only]
#     --smoke          scale factor 0.01, 60 s per query (about a minute)
#     --postgres-only  skip Shoal (checks the harness without a build)
#   Defaults: scale factor 1, 600 s per query, best of 1 run.
#   Environment overrides: TPCH_SF (scale factor, e.g. 0.1), TPCH_TIMEOUT
#   (seconds per query), TPCH_RUNS (runs per query, the best counts),
#   TPCH_QUERIES (e.g. "1 6 14"; default all 22), TPCH_COPY_ROWS (rows per
#   COPY statement, default 100000), TPCH_LOAD_TIMEOUT (seconds per table
#   and database), TPCH_DATA_DIR (the generated data's cache, default
#   $HOME/.cache/shoal/tpch), TPCH_VENV (default
#   $HOME/.cache/shoal/tpch-venv), TPCH_SHOAL_MAX_RSS_MB (default: a third
#   of the machine's memory), SHOAL_BIN, BENCH_TMPDIR (where both
#   stores live; default: mktemp's default), PG_BINDIR.
#   The Shoal binary defaults to $CARGO_TARGET_DIR/release/shoal, then
#   $HOME/.cache/shoal/target/release/shoal, then .../debug/shoal.
#   Only loopback addresses are used; every step has a time bound.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TPCH_DIR=$REPO_ROOT/benches/tpch
# shellcheck source=benches/lib.sh
source "$REPO_ROOT/benches/lib.sh"
# shellcheck source=benches/servers.sh
source "$REPO_ROOT/benches/servers.sh"
POSTGRES_ONLY=0
smoke_flag "$0" "$@"

if (( SMOKE )); then
  SF=${TPCH_SF:-0.01} QUERY_TIMEOUT=${TPCH_TIMEOUT:-60} LOAD_TIMEOUT=${TPCH_LOAD_TIMEOUT:-300}
else
  SF=${TPCH_SF:-1} QUERY_TIMEOUT=${TPCH_TIMEOUT:-600} LOAD_TIMEOUT=${TPCH_LOAD_TIMEOUT:-3600}
fi
RUNS=${TPCH_RUNS:-1}
QUERIES=${TPCH_QUERIES:-"$(seq -s ' ' 1 22)"}
COPY_ROWS=${TPCH_COPY_ROWS:-100000}
DATA_ROOT=${TPCH_DATA_DIR:-$HOME/.cache/shoal/tpch}
VENV=${TPCH_VENV:-$HOME/.cache/shoal/tpch-venv}
TPCHGEN_VERSION=4.0.0   # tpchgen-cli, pinned: the data must not change under the reports
GEN_TIMEOUT=3600        # seconds allowed for generating the data
SETTLE_TIMEOUT=600      # seconds allowed for Shoal's background work after loading (settle_shoal)
READY_TIMEOUT=60        # seconds allowed for a server to accept connections
# Shoal's resident memory at which a query is cancelled (default: a third
# of the machine's memory).
MAX_RSS_MB=${TPCH_SHOAL_MAX_RSS_MB:-$(awk '/^MemTotal:/ { print int($2 / 1024 / 3) }' /proc/meminfo)}
TABLES="region nation part supplier partsupp customer orders lineitem"

[[ $SF =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "TPCH_SF must be a number, not '$SF'" >&2; exit 2; }
[[ $QUERY_TIMEOUT =~ ^[0-9]+$ && $MAX_RSS_MB =~ ^[0-9]+$ && $RUNS =~ ^[1-9][0-9]*$ && $COPY_ROWS =~ ^[1-9][0-9]*$ ]] ||
  { echo "TPCH_TIMEOUT, TPCH_SHOAL_MAX_RSS_MB, TPCH_RUNS and TPCH_COPY_ROWS must be whole numbers" >&2; exit 2; }

for q in $QUERIES; do
  [[ $q =~ ^[0-9]+$ && -f $TPCH_DIR/queries/$(printf 'q%02d.sql' "$((10#$q))") ]] ||
    { echo "TPCH_QUERIES: no query file for '$q'" >&2; exit 2; }
done

# ---------------------------------------------------------------------------
# Packages and data
# ---------------------------------------------------------------------------

ensure_packages() {
  local missing=()
  dpkg -s postgresql >/dev/null 2>&1 || missing+=(postgresql)
  command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  install_debs "${missing[@]}"
}

# ensure_tpchgen: the generator in its own venv beside the build cache.
TPCHGEN=""
ensure_tpchgen() {
  TPCHGEN=$VENV/bin/tpchgen-cli
  if [[ -x $TPCHGEN ]] && [[ $("$TPCHGEN" --version 2>/dev/null) == "tpchgen-cli $TPCHGEN_VERSION" ]]; then
    return 0
  fi
  log "installing tpchgen-cli $TPCHGEN_VERSION into $VENV"
  if ! timeout 120 python3 -m venv --clear "$VENV" >/dev/null 2>&1; then
    # Debian's python3 needs python3-venv for `-m venv` (ensurepip).
    install_debs python3-venv
    timeout 120 python3 -m venv --clear "$VENV" || die "python3 -m venv $VENV failed"
  fi
  timeout 600 "$VENV/bin/pip" install -q --disable-pip-version-check "tpchgen-cli==$TPCHGEN_VERSION" ||
    die "pip install tpchgen-cli==$TPCHGEN_VERSION failed"
  [[ -x $TPCHGEN ]] || die "tpchgen-cli is not in $VENV/bin after installing it"
}

# ensure_data: DATA is the directory of <table>.csv files at scale factor SF
# (with a header line; comma-separated, text fields quoted as needed).
DATA=""
ensure_data() {
  DATA=$DATA_ROOT/sf$SF
  if [[ -f $DATA/done && $(cat "$DATA/done") == "tpchgen-cli $TPCHGEN_VERSION sf$SF" ]]; then
    local t ok=1
    for t in $TABLES; do [[ -s $DATA/$t.csv ]] || ok=0; done
    (( ok )) && return 0
  fi
  log "generating TPC-H data at scale factor $SF (tpchgen-cli $TPCHGEN_VERSION)"
  mkdir -p "$DATA_ROOT"
  rm -rf "$DATA" "$DATA.tmp"
  mkdir -p "$DATA.tmp"
  timeout "$GEN_TIMEOUT" "$TPCHGEN" csv --scale-factor "$SF" --output-dir "$DATA.tmp" \
    --num-threads "$(nproc)" --quiet ||
    { rm -rf "$DATA.tmp"; die "tpchgen-cli failed to generate scale factor $SF"; }
  echo "tpchgen-cli $TPCHGEN_VERSION sf$SF" >"$DATA.tmp/done"
  mv "$DATA.tmp" "$DATA"
}

# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------

declare -A ROWS=() LOAD_SECS=() FAIL=() QSECS=() QROWS=() QERR=() QSTATE=() VERDICT=()
declare -A POST_LOAD_SECS=()

# copy_stream TABLE: the CSV file as a psql script of COPY … FROM STDIN
# statements, each followed by COPY_ROWS data lines and the end marker.
copy_stream() {
  awk -v t="$1" -v n="$COPY_ROWS" '
    NR == 1 { next }   # the header line
    (NR - 2) % n == 0 {
      if (NR > 2) print "\\."
      print "COPY " t " FROM STDIN WITH (FORMAT csv);"
    }
    { print }
    END { if (NR > 1) print "\\." }' "$DATA/$1.csv"
}

# failure_text FILE: a psql error output on one line, without psql's
# "psql:file:line:" prefixes, LOCATION lines and the temporary directory.
failure_text() {
  awk -v w="$WORK" '
    /^(LOCATION|CONTEXT):/ { next }
    { sub(/^psql:[^:]*:[0-9]*: /, ""); gsub(/[ \t]+/, " ")
      while ((i = index($0, w)) > 0) $0 = substr($0, 1, i - 1) "<tmpdir>" substr($0, i + length(w))
      s = s (s == "" ? "" : " ") $0 }
    END { print substr(s, 1, 600) }' "$1"
}

# load NAME CONNINFO: create the tables and fill them; sets LOAD_SECS and
# ROWS; returns non-zero (the error in FAIL[load-NAME]) if something fails.
load() {
  local name=$1 conn=$2 t t0 t1 n err=$WORK/load-$1.err
  log "$name: creating the TPC-H tables"
  if ! psql_run "$conn" 120 -v VERBOSITY=verbose -f "$TPCH_DIR/schema.sql" >/dev/null 2>"$err"; then
    FAIL[load-$name]="CREATE TABLE failed: $(failure_text "$err")"
    return 1
  fi
  for t in $TABLES; do
    log "$name: loading $t (${ROWS[$t]} rows)"
    t0=$(date +%s%N)
    if ! copy_stream "$t" | psql_run "$conn" "$LOAD_TIMEOUT" -v VERBOSITY=verbose >/dev/null 2>"$err"; then
      if [[ ! -s $err ]]; then
        FAIL[load-$name]="loading $t: psql exited without an error (timed out after ${LOAD_TIMEOUT}s?)"
      else
        FAIL[load-$name]="loading $t: $(failure_text "$err")"
      fi
      return 1
    fi
    t1=$(date +%s%N)
    LOAD_SECS[$name|$t]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    if ! n=$(psql_run "$conn" 600 -c "SELECT count(*) FROM $t" 2>&1); then
      FAIL[load-$name]="SELECT count(*) FROM $t failed: $n"
      return 1
    fi
    if [[ $n != "${ROWS[$t]}" ]]; then
      FAIL[load-$name]="$t has $n rows after loading, expected ${ROWS[$t]}"
      return 1
    fi
  done
}

# ---------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------

# guarded_psql NAME CONNINFO FILE OUT ERR: runs query FILE with psql in the
# background, bounded by statement_timeout and, should the server not stop
# it, by QUERY_TIMEOUT + 60 s (then psql is killed). For Shoal it also
# watches the node's resident memory: past MAX_RSS_MB the query is
# cancelled (SIGINT: psql sends a CancelRequest), and if the node is still
# above it 15 s later, or passes 1.5× the limit, the node is stopped — one
# runaway query must not take the machine's memory. Returns psql's status;
# sets GUARD (what the guard did, if anything).
GUARD=""
SHOAL_DOWN=""   # why the remaining queries do not run on Shoal
guarded_psql() {
  local name=$1 conn=$2 file=$3 out=$4 err=$5 pid rc=0 rss cancelled=0 cancelled_at=0 deadline killed=0
  GUARD=""
  PGCONNECT_TIMEOUT=10 psql "$conn" -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose \
    -c "SET statement_timeout = '${QUERY_TIMEOUT}s'" -c '\timing on' -f "$file" >"$out" 2>"$err" &
  pid=$!
  deadline=$(( SECONDS + QUERY_TIMEOUT + 60 ))
  while kill -0 "$pid" 2>/dev/null; do
    if [[ $name == Shoal && -n $SHOAL_PID ]]; then
      rss=$(awk '/^VmRSS:/ { print int($2 / 1024) }' "/proc/$SHOAL_PID/status" 2>/dev/null || true)
      if [[ -n $rss ]] && (( rss > MAX_RSS_MB )); then
        if (( ! cancelled )); then
          GUARD="Shoal's memory passed ${MAX_RSS_MB} MiB (RSS $rss MiB): the query was cancelled by the harness"
          log "Q$((10#${file:1:2})): $GUARD"
          kill -INT "$pid" 2>/dev/null || true
          cancelled=1 cancelled_at=$SECONDS
        elif (( SECONDS - cancelled_at > 15 || rss > MAX_RSS_MB * 3 / 2 )); then
          GUARD+="; the node stayed above it (RSS $rss MiB) and was stopped"
          log "Q$((10#${file:1:2})): the Shoal node stays above the limit (RSS $rss MiB); stopping it"
          stop_shoal
          SHOAL_OK=0
          SHOAL_DOWN="the node was stopped by the harness's memory guard during an earlier query"
        fi
      fi
    fi
    if (( SECONDS >= deadline )); then
      if (( ! killed )); then
        GUARD="psql was still waiting $(( QUERY_TIMEOUT + 60 ))s after the query started (statement_timeout did not stop it); killed"
        kill -TERM "$pid" 2>/dev/null || true
        killed=1
        deadline=$(( SECONDS + 10 ))
      else
        kill -KILL "$pid" 2>/dev/null || true
      fi
    fi
    sleep 0.2
  done
  wait "$pid" || rc=$?
  return "$rc"
}

# run_query NAME CONNINFO Q: the best of RUNS runs of query Q. Sets
# QSECS[NAME|Q] and QROWS[NAME|Q], or QERR[NAME|Q] (and QSTATE, the
# SQLSTATE); the output of the first run is left in $WORK/out/qNN-NAME.txt.
# Runs from the queries' directory, so that psql's messages name the file
# relatively.
run_query() {
  local name=$1 conn=$2 q=$3 file out err tmp r rc ms best="" state
  file=$(printf 'q%02d.sql' "$((10#$q))")
  out=$WORK/out/${file%.sql}-$name.txt err=$WORK/out/${file%.sql}-$name.err tmp=$WORK/out/run.txt
  for (( r = 1; r <= RUNS; r++ )); do
    rc=0
    # psql's \timing: from sending the query to having its whole result.
    guarded_psql "$name" "$conn" "$file" "$tmp" "$err" || rc=$?
    if (( rc != 0 )) || [[ -n $GUARD ]]; then
      QERR[$name|$q]=$(failure_text "$err")
      [[ -n ${QERR[$name|$q]} ]] || QERR[$name|$q]="psql exited with status $rc"
      state=$(sed -n 's/.*ERROR: *\([0-9A-Z]\{5\}\):.*/\1/p' "$err" | head -n1)
      QSTATE[$name|$q]=${state:-error}
      if [[ -n $GUARD ]]; then
        QERR[$name|$q]="$GUARD — ${QERR[$name|$q]}"
        [[ $GUARD == Shoal* ]] && QSTATE[$name|$q]=memory
        [[ $GUARD == psql* ]] && QSTATE[$name|$q]=timeout
      fi
      unset "QSECS[$name|$q]"
      return 0
    fi
    ms=$(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' "$tmp" | tail -n1)
    [[ -n $ms ]] || { QERR[$name|$q]="no timing in psql's output"; QSTATE[$name|$q]=error; return 0; }
    if [[ -z $best ]] || awk -v a="$ms" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$ms; fi
    if (( r == 1 )); then
      grep -v '^Time: [0-9.]* ms' "$tmp" >"$out" || true
      QROWS[$name|$q]=$(wc -l <"$out")
    fi
  done
  QSECS[$name|$q]=$(awk -v ms="$best" 'BEGIN { printf "%.3f", ms / 1000 }')
}

# normalize FILE: psql's unaligned rows with each field trimmed (char(n)
# padding), each number rounded to 2 decimals, the rows sorted: ORDER BY
# ties may come out in either order on either database.
normalize() {
  awk -F'|' -v OFS='|' '{
      for (i = 1; i <= NF; i++) {
        gsub(/^[ \t]+|[ \t]+$/, "", $i)
        if ($i ~ /^-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$/) {
          $i = sprintf("%.2f", $i + 0)
          if ($i == "-0.00") $i = "0.00"
        }
      }
      print
    }' "$1" | LC_ALL=C sort
}

# within_cent A B: the normalized outputs A and B differ only in numbers,
# and by at most one cent (or one part in 1e12): rounding on the boundary.
within_cent() {
  awk -F'|' '
    NR == FNR { a[FNR] = $0; n = FNR; next }
    {
      m = FNR
      if (!(FNR in a)) exit 1
      k = split(a[FNR], x, "|")
      if (k != NF) exit 1
      for (i = 1; i <= NF; i++) {
        if (x[i] == $i) continue
        if (x[i] !~ /^-?[0-9.]+$/ || $i !~ /^-?[0-9.]+$/) exit 1
        d = x[i] - $i; if (d < 0) d = -d
        s = x[i] < 0 ? -x[i] : x[i]
        if (d > 0.0100001 && d > s * 1e-12) exit 1
      }
    }
    END { if (m != n) exit 1 }' "$1" "$2"
}

# compare Q: sets VERDICT[Q] to "same", "same ±0.01" or "DIFFERENT"; keeps
# a diff of differing outputs in the log directory.
compare() {
  local q=$1 file a b
  file=$(printf 'q%02d' "$((10#$q))")
  a=$WORK/out/$file-PostgreSQL.norm b=$WORK/out/$file-Shoal.norm
  normalize "$WORK/out/$file-PostgreSQL.txt" >"$a"
  normalize "$WORK/out/$file-Shoal.txt" >"$b"
  if cmp -s "$a" "$b"; then
    VERDICT[$q]="same"
  elif [[ -s $a && -s $b ]] && within_cent "$a" "$b"; then
    VERDICT[$q]="same ±0.01"
  else
    VERDICT[$q]="DIFFERENT"
    diff -u --label "$file PostgreSQL" --label "$file Shoal" "$a" "$b" >"$LOG_DIR/$file.diff" || true
  fi
}

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s == "" || s + 0 == 0) print "—"; else printf "%.0f", n / s }'; }
# is_timeout NAME Q: the query ran out of time (statement_timeout, 57014,
# or the harness's own bound).
is_timeout() { [[ ${QSTATE[$1|$2]:-} == 57014 || ${QSTATE[$1|$2]:-} == timeout ]]; }
qcell() { # qcell NAME Q: seconds, "> N (timeout)" or "failed (SQLSTATE)"
  if [[ $1 == PostgreSQL ]] && is_timeout "$1" "$2"; then echo "> $QUERY_TIMEOUT (timeout)"
  elif [[ -n ${QERR[$1|$2]:-} ]]; then echo "failed (${QSTATE[$1|$2]})"
  elif [[ -n ${QSECS[$1|$2]:-} ]]; then echo "${QSECS[$1|$2]}"
  else echo "—"; fi
}
md() { tr '|' '/' <<<"$1"; }
join_by() { local sep=$1 out="" x; shift; for x in "$@"; do out+=${out:+$sep}$x; done; printf '%s' "$out"; }

write_report() {
  local t q pk sk fstype profile total_rows=0 pg_total=0 sh_total=0 both=0 rows_cell match rcell
  local pg_all=0 sh_load=0 pg_load=0 target total_ratio logsum=0 sh_extra=0 pg_bound sh_bound
  local excluded=() shoal_bad=() pg_timeouts=()
  fstype=$(df --output=fstype "$WORK" 2>/dev/null | tail -n1 || echo "?")
  profile=""
  if [[ -n $SHOAL_BIN_ABS ]]; then
    profile=$(basename "$(dirname "$SHOAL_BIN_ABS")")
    [[ $profile == release || $profile == debug ]] || profile="unknown-profile"
  fi
  for t in $TABLES; do total_rows=$(( total_rows + ${ROWS[$t]} )); done
  {
    echo "# TPC-H: Shoal vs PostgreSQL — $STAMP"
    echo
    echo "- mode: $( (( SMOKE )) && echo smoke || echo full); scale factor $SF ($total_rows rows); queries: $QUERIES; best of $RUNS run(s) per query; statement_timeout ${QUERY_TIMEOUT}s"
    echo "- machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r), stores on $fstype; load average before the runs: $LOADAVG"
    echo "- PostgreSQL: $("$PG_BIN/postgres" --version | sed 's/^postgres (PostgreSQL) //') (defaults, fsync=on; VACUUM ANALYZE and CHECKPOINT after loading)"
    if (( POSTGRES_ONLY )); then
      echo "- Shoal: skipped (--postgres-only)"
    else
      echo "- Shoal: $("$SHOAL_BIN_ABS" --version 2>/dev/null || echo shoal), one node ($profile build$([[ $profile == debug ]] && echo ' — NOT meaningful for speed goals; use a release build'))"
    fi
    echo "- data: tpchgen-cli $TPCHGEN_VERSION, CSV, loaded with COPY … FROM STDIN (FORMAT csv) through psql, $COPY_ROWS rows per COPY"
    echo "- commit: $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo none)$( [[ -n $(git -C "$REPO_ROOT" status --porcelain 2>/dev/null | head -n1) ]] && echo ' (with uncommitted changes)')"
    echo
    echo "## Load"
    echo
    echo "| table | rows | PostgreSQL s | PostgreSQL rows/s | Shoal s | Shoal rows/s |"
    echo "|---|---:|---:|---:|---:|---:|"
    for t in $TABLES; do
      echo "| $t | ${ROWS[$t]} | ${LOAD_SECS[PostgreSQL|$t]:-—} | $(rate "${ROWS[$t]}" "${LOAD_SECS[PostgreSQL|$t]:-}") | ${LOAD_SECS[Shoal|$t]:-—} | $(rate "${ROWS[$t]}" "${LOAD_SECS[Shoal|$t]:-}") |"
      pg_load=$(awk -v a="$pg_load" -v b="${LOAD_SECS[PostgreSQL|$t]:-0}" 'BEGIN { print a + b }')
      sh_load=$(awk -v a="$sh_load" -v b="${LOAD_SECS[Shoal|$t]:-0}" 'BEGIN { print a + b }')
    done
    printf '| **total** | %s | %.3f | %s | %s | %s |\n' "$total_rows" "$pg_load" "$(rate "$total_rows" "$pg_load")" \
      "$([[ -n ${LOAD_SECS[Shoal|lineitem]:-} ]] && printf '%.3f' "$sh_load" || echo —)" \
      "$([[ -n ${LOAD_SECS[Shoal|lineitem]:-} ]] && rate "$total_rows" "$sh_load" || echo —)"
    echo
    echo "After loading: PostgreSQL VACUUM ANALYZE + CHECKPOINT ${POST_LOAD_SECS[PostgreSQL]:-—} s$([[ -n ${POST_LOAD_SECS[Shoal]:-} ]] && echo "; Shoal VACUUM ANALYZE (accepted, no work) and settling ${POST_LOAD_SECS[Shoal]} s")."
    echo
    echo "## Queries"
    echo
    echo "Seconds per query (psql \\timing, best of $RUNS). Results are compared as sorted rows, fields trimmed, numbers rounded to 2 decimals."
    echo
    echo "| query | PostgreSQL s | Shoal s | Shoal/PostgreSQL | rows PostgreSQL / Shoal | rows match | results |"
    echo "|---|---:|---:|---:|---:|---|---|"
    for q in $QUERIES; do
      pk="PostgreSQL|$q" sk="Shoal|$q"
      rows_cell="${QROWS[$pk]:-—} / ${QROWS[$sk]:-—}"
      match="—" rcell=$(ratio "${QSECS[$sk]:-}" "${QSECS[$pk]:-}")
      [[ -n ${QSECS[$pk]:-} ]] && pg_all=$(awk -v a="$pg_all" -v b="${QSECS[$pk]}" 'BEGIN { print a + b }')
      if [[ -n ${QSECS[$pk]:-} && -n ${QSECS[$sk]:-} ]]; then
        [[ ${QROWS[$pk]} == "${QROWS[$sk]}" ]] && match=yes || match=NO
        both=$(( both + 1 ))
        pg_total=$(awk -v a="$pg_total" -v b="${QSECS[$pk]}" 'BEGIN { print a + b }')
        sh_total=$(awk -v a="$sh_total" -v b="${QSECS[$sk]}" 'BEGIN { print a + b }')
        logsum=$(awk -v a="$logsum" -v s="${QSECS[$sk]}" -v p="${QSECS[$pk]}" 'BEGIN { s = s < 0.001 ? 0.001 : s; p = p < 0.001 ? 0.001 : p; print a + log(s / p) }')
        [[ ${VERDICT[$q]:-} == same* ]] || shoal_bad+=("Q$q (wrong results)")
      elif [[ -n ${QSECS[$sk]:-} ]] && is_timeout PostgreSQL "$q"; then
        # PostgreSQL ran out of time: its time is at least the timeout.
        pg_timeouts+=("Q$q")
        sh_extra=$(awk -v a="$sh_extra" -v b="${QSECS[$sk]}" 'BEGIN { print a + b }')
        rcell="< $(ratio "${QSECS[$sk]}" "$QUERY_TIMEOUT")"
      else
        excluded+=("Q$q")
      fi
      if (( ! POSTGRES_ONLY )) && [[ -z ${QSECS[$sk]:-} ]]; then
        shoal_bad+=("Q$q (${QSTATE[$sk]:-not run} on Shoal)")
      fi
      echo "| Q$q | $(qcell PostgreSQL "$q") | $(qcell Shoal "$q") | $rcell | $rows_cell | $match | ${VERDICT[$q]:-$( [[ " ${pg_timeouts[*]:-} " == *" Q$q "* ]] && echo unchecked || echo —)} |"
    done
    total_ratio=$(ratio "$sh_total" "$pg_total")
    if (( POSTGRES_ONLY )); then
      printf '| **total** | %.3f | | | | | |\n' "$pg_all"
    else
      printf '| **total** (the %d queries that ran on both) | %.3f | %.3f | %s | | | |\n' "$both" "$pg_total" "$sh_total" "$total_ratio"
    fi
    if (( ${#pg_timeouts[@]} )); then
      pg_bound=$(awk -v a="$pg_total" -v n="${#pg_timeouts[@]}" -v t="$QUERY_TIMEOUT" 'BEGIN { print a + n * t }')
      sh_bound=$(awk -v a="$sh_total" -v b="$sh_extra" 'BEGIN { print a + b }')
      total_ratio="< $(ratio "$sh_bound" "$pg_bound")"
      printf '| **total** with PostgreSQL'"'"'s timeouts (%s) counted as %s s | > %.3f | %.3f | %s | | | |\n' \
        "$(join_by ', ' "${pg_timeouts[@]}")" "$QUERY_TIMEOUT" "$pg_bound" "$sh_bound" "$total_ratio"
    fi
    echo
    if (( both )); then
      echo "Geometric mean of the per-query ratios Shoal/PostgreSQL (the $both queries that ran on both): $(awk -v a="$logsum" -v n="$both" 'BEGIN { printf "%.2f", exp(a / n) }')."
    fi
    echo "PostgreSQL's total over every query it finished: $(printf '%.3f' "$pg_all") s."
    if (( ${#excluded[@]} && ! POSTGRES_ONLY )); then
      echo "Not in the totals (failed, timed out or not run on one of the databases): $(join_by ', ' "${excluded[@]}")."
    fi
    echo
    echo "## Target"
    echo
    if (( POSTGRES_ONLY )); then
      target="not measured (--postgres-only)"
    elif (( ${#shoal_bad[@]} )); then
      target="**not met** — not every query ran on Shoal with PostgreSQL's results: $(join_by ', ' "${shoal_bad[@]}")"
    elif (( ${#excluded[@]} )); then
      target="not decided — $(join_by ', ' "${excluded[@]}") failed on PostgreSQL"
    elif awk -v r="${total_ratio#< }" 'BEGIN { exit !(r <= 0.5) }'; then
      target="**met**"
    else
      target="**not met**"
    fi
    if (( ${#pg_timeouts[@]} )) && (( ! ${#shoal_bad[@]} )); then
      target+=" (PostgreSQL's timeouts count as $QUERY_TIMEOUT s each, a lower bound, so the ratio is an upper bound; those queries' results are unchecked)"
    fi
    echo "TPC-H SF1 total time ≤ 0.5× PostgreSQL's — at scale factor $SF: Shoal/PostgreSQL = $total_ratio: $target$([[ $SF != 1 ]] && echo ". The target is defined at SF1; this run is SF $SF and only indicative")."
    if (( ${#FAIL[@]} )) || [[ -n ${!QERR[*]} ]] || printf '%s\n' "${VERDICT[@]:-}" | grep -q DIFFERENT; then
      echo
      echo "## Failures and mismatches"
      echo
      for pk in $(printf '%s\n' "${!FAIL[@]}" | sort); do
        echo "- \`$pk\`: $(md "${FAIL[$pk]}")"
      done
      for q in $QUERIES; do
        for pk in PostgreSQL Shoal; do
          [[ -n ${QERR[$pk|$q]:-} ]] && echo "- Q$q on $pk: $(md "${QERR[$pk|$q]}")"
        done
        if [[ ${VERDICT[$q]:-} == DIFFERENT ]]; then
          echo "- Q$q: Shoal's rows differ from PostgreSQL's ($(printf 'q%02d.diff' "$((10#$q))") in the log directory); first lines of the diff:"
          echo
          echo '  ```diff'
          sed -n '3,14p' "$LOG_DIR/$(printf 'q%02d.diff' "$((10#$q))")" | cut -c1-200 | sed 's/^/  /'
          echo '  ```'
        fi
      done
    fi
    echo
    echo "Error texts, diffs of differing results and both server logs: \`benches/results/tpch-$STAMP/\`."
  } >"$REPORT"
}

# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

ensure_packages
PG_BIN=$(find_pg_bindir)
SHOAL_BIN_ABS=""
(( POSTGRES_ONLY )) || SHOAL_BIN_ABS=$(find_shoal_bin)
ensure_tpchgen
ensure_data
for t in $TABLES; do
  ROWS[$t]=$(( $(wc -l <"$DATA/$t.csv") - 1 ))
done

# STAMP, REPORT and LOG_DIR (benches/results/tpch-STAMP), a temporary WORK
# directory removed on exit (after both servers are stopped), free ports,
# PG_CONN and SHOAL_CONN.
bench_init tpch
mkdir -p "$WORK/out"

log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
start_pg
SHOAL_OK=0
if (( ! POSTGRES_ONLY )); then
  log "starting Shoal ($SHOAL_BIN_ABS) on 127.0.0.1:$SHOAL_PORT"
  start_shoal
  SHOAL_OK=1
fi

load PostgreSQL "$PG_CONN" || die "${FAIL[load-PostgreSQL]}"
t0=$(date +%s%N)
psql_run "$PG_CONN" "$LOAD_TIMEOUT" -c 'VACUUM ANALYZE' -c 'CHECKPOINT' >/dev/null
POST_LOAD_SECS[PostgreSQL]=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
if (( SHOAL_OK )); then
  if load Shoal "$SHOAL_CONN"; then
    t0=$(date +%s%N)
    psql_run "$SHOAL_CONN" 600 -c 'VACUUM ANALYZE' >/dev/null 2>&1 || log "Shoal: VACUUM ANALYZE failed (ignored)"
    settle_shoal
    POST_LOAD_SECS[Shoal]=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
  else
    SHOAL_OK=0
    SHOAL_DOWN="loading the data into Shoal failed (see below)"
    log "Shoal: ${FAIL[load-Shoal]}"
  fi
fi

cd "$TPCH_DIR/queries"
for q in $QUERIES; do
  log "Q$q: PostgreSQL"
  run_query PostgreSQL "$PG_CONN" "$q"
  if (( SHOAL_OK )) && ! kill -0 "$SHOAL_PID" 2>/dev/null; then
    SHOAL_OK=0
    SHOAL_DOWN="the Shoal node exited during an earlier query (see shoal.log)"
  fi
  if (( SHOAL_OK )); then
    log "Q$q: Shoal"
    run_query Shoal "$SHOAL_CONN" "$q"
    if [[ -n ${QERR[Shoal|$q]:-} && -n $SHOAL_PID ]] && ! kill -0 "$SHOAL_PID" 2>/dev/null; then
      QERR[Shoal|$q]+=" (the Shoal node exited during this query; see shoal.log)"
    fi
  elif [[ -n $SHOAL_DOWN ]]; then
    QERR[Shoal|$q]="not run: $SHOAL_DOWN"
    QSTATE[Shoal|$q]="not run"
  fi
  if [[ -n ${QSECS[PostgreSQL|$q]:-} && -n ${QSECS[Shoal|$q]:-} ]]; then
    compare "$q"
  fi
  for pk in PostgreSQL Shoal; do
    f=$(printf 'q%02d-%s.err' "$((10#$q))" "$pk")
    if [[ -n ${QERR[$pk|$q]:-} && -s $WORK/out/$f ]]; then cp "$WORK/out/$f" "$LOG_DIR/$f"; fi
  done
done
cd "$REPO_ROOT"

write_report
echo
cat "$REPORT"
echo
log "report: ${REPORT#"$REPO_ROOT"/}"

# PostgreSQL is the reference: a query it rejects (other than by running out
# of time) is the harness's fault, and fails the run. Shoal's failures and
# wrong results are in the report, not in the exit status.
PG_BROKEN=()
for q in $QUERIES; do
  if [[ -n ${QERR[PostgreSQL|$q]:-} ]] && ! is_timeout PostgreSQL "$q"; then PG_BROKEN+=("Q$q"); fi
done
(( ${#PG_BROKEN[@]} == 0 )) || die "PostgreSQL failed $(join_by ', ' "${PG_BROKEN[@]}") (see the report)"
