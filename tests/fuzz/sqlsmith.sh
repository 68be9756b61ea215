#!/usr/bin/env bash
# tests/fuzz/sqlsmith.sh — fuzz a single Shoal node with sqlsmith.
#
# Starts a throwaway node, loads tests/fuzz/schema.sql, runs sqlsmith's
# random queries against it with a fixed seed, then checks the node: still
# running, no "panicked" line in its log, still answering `SELECT 1`.
# Prints a summary and exits non-zero on a crash, panic or hang.
#
#   SHOAL_BIN=path/to/shoal tests/fuzz/sqlsmith.sh [options]
#
#   --queries N      statements to generate and run (default 2000)
#   --seconds S      stop running statements after S seconds (default: none)
#   --seed N         sqlsmith's seed (default 1)
#   --mode M         live:   sqlsmith sends the queries to Shoal itself
#                            (needs sqlsmith's schema loader to work on Shoal)
#                    replay: `sqlsmith --dry-run` writes the queries and
#                            replay.py runs them on Shoal one by one, noting
#                            each one's SQLSTATE and time, and which one was
#                            in flight when the node panicked or hung
#                            (TABLESAMPLE clauses, which Shoal refuses,
#                            dropped so the rest of the statement runs)
#                    auto (default): replay
#   --schema-from W  where sqlsmith reads the catalog it generates from, in
#                    replay mode: shoal, postgres (a throwaway PostgreSQL
#                    cluster holding the same schema.sql), or auto (default:
#                    shoal if sqlsmith's loader succeeds there, else postgres)
#   --with-catalog   let queries use catalog relations (default: sqlsmith's
#                    --exclude-catalog)
#   --out DIR        keep the results here (default: a new temporary directory)
#   --keep           keep the node's store as well
#   -h, --help
#
# Environment:
#   SHOAL_BIN            the shoal binary (required)
#   SQLSMITH             sqlsmith (default: sqlsmith on PATH)
#   PG_BINDIR            PostgreSQL's initdb/pg_ctl directory, for
#                        --schema-from postgres (default: asked of dpkg)
#   FUZZ_PORTS           loopback port range to take ports from
#                        (default 21000-21999)
#   STATEMENT_TIMEOUT    seconds, replay mode (default 5; sqlsmith's own live
#                        mode always sets 1 s)
#   HANG_SECS            a statement running this long is a hang (default 30)
#   TMPDIR               where the temporary directory goes
#
# Results in the output directory: node.log, queries.sql (every statement,
# in order), summary.txt, errors_by_sqlstate.tsv, errors_by_class.tsv, and
# findings/NNNNN-KIND.{sql,txt} for each statement that panicked or crashed
# the node, lost its connection, hung or overran statement_timeout.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
QUERIES=2000 SECONDS_BUDGET=0 SEED=1 MODE=auto SCHEMA_FROM=auto
CATALOG_FLAG=--exclude-catalog OUT="" KEEP=0
STATEMENT_TIMEOUT=${STATEMENT_TIMEOUT:-5}
HANG_SECS=${HANG_SECS:-30}
READY_TIMEOUT=60

say() { printf '[fuzz] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

while (( $# )); do
  case $1 in
    --queries) QUERIES=$2; shift ;;
    --seconds) SECONDS_BUDGET=$2; shift ;;
    --seed) SEED=$2; shift ;;
    --mode) MODE=$2; shift ;;
    --schema-from) SCHEMA_FROM=$2; shift ;;
    --with-catalog) CATALOG_FLAG="" ;;
    --out) OUT=$2; shift ;;
    --keep) KEEP=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
  shift
done
[[ $QUERIES =~ ^[0-9]+$ && $SEED =~ ^[0-9]+$ && $SECONDS_BUDGET =~ ^[0-9]+$ ]] ||
  die "--queries, --seed and --seconds take whole numbers"
case $MODE in auto) MODE=replay ;; live|replay) ;; *) die "--mode: live, replay or auto" ;; esac
case $SCHEMA_FROM in auto|shoal|postgres) ;; *) die "--schema-from: shoal, postgres or auto" ;; esac

[[ -n ${SHOAL_BIN:-} ]] || die "set SHOAL_BIN to the shoal binary"
[[ -x $SHOAL_BIN ]] || die "SHOAL_BIN=$SHOAL_BIN is not an executable"
SQLSMITH=${SQLSMITH:-$(command -v sqlsmith || true)}
[[ -n $SQLSMITH ]] || die "sqlsmith not found (Debian: apt-get install sqlsmith), or set SQLSMITH"
command -v psql >/dev/null || die "psql not found"
command -v python3 >/dev/null || die "python3 not found"

WORK=$(mktemp -d -t shoal-sqlsmith.XXXXXX)
chmod 711 "$WORK"
[[ -n $OUT ]] || OUT=$WORK/out
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SHOAL_PID="" PG_STARTED=0 SMITH_PID=""

stop_pid() { # stop_pid PID: SIGTERM, up to 10 s, then SIGKILL — that pid only
  local pid=$1 i
  [[ -n $pid ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

as_pg() { # PostgreSQL refuses to run as root
  if [[ $(id -u) == 0 ]]; then (cd "$WORK/pg" && runuser -u postgres -- "$@"); else "$@"; fi
}

cleanup() {
  local rc=$?
  set +e
  stop_pid "$SMITH_PID"
  stop_pid "$SHOAL_PID"
  if (( PG_STARTED )); then
    as_pg "$PG_BINDIR/pg_ctl" -D "$WORK/pg/data" -m immediate -t 30 stop >/dev/null 2>&1
  fi
  [[ -f $WORK/node/shoal.log ]] && cp "$WORK/node/shoal.log" "$OUT/node.log"
  rm -rf "$WORK/pg"
  (( KEEP )) || rm -rf "$WORK/node"
  [[ $OUT == "$WORK"/* ]] || (( KEEP )) || rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

FUZZ_PORTS=${FUZZ_PORTS:-21000-21999}
PORT_LO=${FUZZ_PORTS%-*} PORT_HI=${FUZZ_PORTS#*-}
[[ $PORT_LO =~ ^[0-9]+$ && $PORT_HI =~ ^[0-9]+$ && $PORT_LO -le $PORT_HI ]] || die "FUZZ_PORTS=$FUZZ_PORTS is not LOW-HIGH"
TAKEN=" "
pick_port() { # pick_port VAR: a free loopback port in FUZZ_PORTS
  local p _
  for _ in $(seq 200); do
    p=$(( PORT_LO + RANDOM % (PORT_HI - PORT_LO + 1) ))
    [[ $TAKEN == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      TAKEN+="$p "; printf -v "$1" '%s' "$p"; return 0
    fi
  done
  die "no free port in $PORT_LO-$PORT_HI"
}

# select_1 CONNINFO SECS: does the server answer `SELECT 1` within SECS?
select_1() {
  [[ $(PGCONNECT_TIMEOUT=5 timeout "$2" psql "$1" -X -q -At -c 'select 1' 2>/dev/null) == 1 ]]
}

wait_ready() { # wait_ready CONNINFO PID
  local deadline=$(( SECONDS + READY_TIMEOUT ))
  while (( SECONDS < deadline )); do
    [[ -z $2 ]] || kill -0 "$2" 2>/dev/null || return 1
    select_1 "$1" 5 && return 0
    sleep 0.2
  done
  return 1
}

# --- the node ---------------------------------------------------------------
pick_port SQL_PORT
pick_port NODE_PORT
CONN="host=127.0.0.1 port=$SQL_PORT user=shoal dbname=shoal"
mkdir -p "$WORK/node"
NODE_LOG=$WORK/node/shoal.log
say "starting Shoal on 127.0.0.1:$SQL_PORT; results in $OUT"
NO_COLOR=1 "$SHOAL_BIN" start --store "$WORK/node/store" \
  --sql-addr "127.0.0.1:$SQL_PORT" --listen-addr "127.0.0.1:$NODE_PORT" >"$NODE_LOG" 2>&1 &
SHOAL_PID=$!
if ! wait_ready "$CONN" "$SHOAL_PID"; then
  grep -Ev '^ +([0-9]+: |at )' "$NODE_LOG" | tail -n 30 >&2
  die "Shoal did not answer on 127.0.0.1:$SQL_PORT within ${READY_TIMEOUT}s"
fi
PGCONNECT_TIMEOUT=5 timeout 300 psql "$CONN" -X -q -v ON_ERROR_STOP=1 -f "$HERE/schema.sql" >"$OUT/schema-load.log" 2>&1 ||
  { cat "$OUT/schema-load.log" >&2; die "loading schema.sql into Shoal failed"; }

# --- can sqlsmith load its schema from Shoal? ---------------------------------
# sqlsmith reads Shoal's catalog before it generates anything; with
# --max-queries=0 it stops right after (sqlsmith 1.4 prints the first failing
# catalog query's error and exits 1).
LOADER_OK=0
if timeout 120 "$SQLSMITH" --target="$CONN" --max-queries=0 $CATALOG_FLAG >"$OUT/schema-probe.log" 2>&1; then
  LOADER_OK=1
  say "sqlsmith's schema loader works on Shoal"
else
  say "sqlsmith cannot load its schema from Shoal:"
  grep -v '^SQLsmith' "$OUT/schema-probe.log" | head -n 5 | sed 's/^/[fuzz]   /' >&2
fi

# --- running the queries -------------------------------------------------------
STARTED=$SECONDS
FINDINGS_DIR=$OUT/findings
mkdir -p "$FINDINGS_DIR"
SMITH_NOTE=""

run_live() {
  (( LOADER_OK )) || die "--mode live needs sqlsmith's schema loader to work on Shoal (see $OUT/schema-probe.log)"
  say "sqlsmith --seed=$SEED --max-queries=$QUERIES against Shoal (statement_timeout 1s, set by sqlsmith)"
  "$SQLSMITH" --target="$CONN" --seed="$SEED" --max-queries="$QUERIES" $CATALOG_FLAG \
    --verbose --dump-all-queries >"$OUT/queries.sql" 2>"$OUT/sqlsmith.log" &
  SMITH_PID=$!
  # sqlsmith prints each query (flushed) before it runs it and one progress
  # character after; neither file growing for HANG_SECS means the statement
  # last printed hangs.
  local last_size=-1 size still=0 budget_end=$(( SECONDS_BUDGET ? SECONDS + SECONDS_BUDGET : 0 ))
  SMITH_NOTE="finished"
  while kill -0 "$SMITH_PID" 2>/dev/null; do
    sleep 1
    size=$(( $(stat -c %s "$OUT/queries.sql") + $(stat -c %s "$OUT/sqlsmith.log") ))
    if (( size == last_size )); then still=$(( still + 1 )); else still=0; last_size=$size; fi
    if (( still >= HANG_SECS )); then SMITH_NOTE="hang"; break; fi
    if (( budget_end && SECONDS >= budget_end )); then SMITH_NOTE="time budget"; break; fi
    if ! kill -0 "$SHOAL_PID" 2>/dev/null; then SMITH_NOTE="node died"; break; fi
  done
  stop_pid "$SMITH_PID"; SMITH_PID=""
  PYTHONDONTWRITEBYTECODE=1 python3 - "$HERE" "$OUT" "$SMITH_NOTE" <<'EOF'
import collections, os, re, sys
sys.path.insert(0, sys.argv[1])
from replay import split_statements
out, note = sys.argv[2], sys.argv[3]
stmts = split_statements(open(os.path.join(out, "queries.sql"), errors="replace").read())
log = open(os.path.join(out, "sqlsmith.log"), errors="replace").read()
# Progress lines hold only . (ok) e (error) t (timeout) S (syntax error)
# C (connection lost), one character per statement in order.
marks = "".join(l for l in log.splitlines() if re.fullmatch(r"[.etSC]+", l))
# The last report sqlsmith printed: "queries: N" ... "error rate: R".
reports = re.findall(r"\nqueries: (\d+)\n.*?\n((?:\d+\t.*\n)*)error rate: ([0-9.e+-]+)", log, re.S)
c = collections.Counter(marks)
with open(os.path.join(out, "summary.txt"), "w") as f:
    f.write(f"statements_generated: {len(stmts)}\nstatements_run: {len(marks)}\n")
    f.write(f"ok: {c['.']}\nerrors: {c['e'] + c['S']}\nsyntax_errors: {c['S']}\n")
    f.write(f"statement_timeouts: {c['t']}\nconnection_lost: {c['C']}\n")
    f.write(f"stopped_by: {note}\n")
with open(os.path.join(out, "errors_by_class.tsv"), "w") as f:
    if reports:
        f.write(reports[-1][1].replace("ERROR:  ", ""))
fd = os.path.join(out, "findings")
for i, m in enumerate(marks, 1):
    if m == "C" and i <= len(stmts):
        open(os.path.join(fd, f"{i:05d}-lost.sql"), "w").write(stmts[i - 1] + ";\n")
if note == "hang" and len(stmts) > len(marks):
    i = len(marks) + 1
    open(os.path.join(fd, f"{i:05d}-hang.sql"), "w").write(stmts[i - 1] + ";\n")
EOF
}

start_pg() { # a throwaway PostgreSQL cluster holding schema.sql, for sqlsmith to read
  if [[ -z ${PG_BINDIR:-} ]]; then
    local pkg
    pkg=$(dpkg-query -W -f='${Depends}' postgresql 2>/dev/null | grep -o 'postgresql-[0-9][0-9]*' | head -n1 || true)
    [[ -n $pkg ]] && PG_BINDIR=$(dirname "$(dpkg -L "$pkg" 2>/dev/null | grep '/bin/initdb$' | head -n1)")
    [[ -n ${PG_BINDIR:-} && -x $PG_BINDIR/initdb ]] || PG_BINDIR=$(dirname "$(command -v initdb || echo /initdb)")
  fi
  [[ -x $PG_BINDIR/initdb ]] || die "PostgreSQL's initdb not found; set PG_BINDIR"
  pick_port PG_PORT
  PG_CONN="host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres"
  mkdir -p "$WORK/pg"
  [[ $(id -u) == 0 ]] && chown postgres:postgres "$WORK/pg"
  as_pg "$PG_BINDIR/initdb" -D "$WORK/pg/data" -U postgres --auth=trust -E UTF8 --locale=C \
    >"$WORK/pg/initdb.log" 2>&1 || { cat "$WORK/pg/initdb.log" >&2; die "initdb failed"; }
  as_pg "$PG_BINDIR/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/server.log" -w -t 60 \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=''" start >/dev/null ||
    { cat "$WORK/pg/server.log" >&2; die "PostgreSQL did not start"; }
  PG_STARTED=1
  PGCONNECT_TIMEOUT=5 timeout 300 psql "$PG_CONN" -X -q -v ON_ERROR_STOP=1 -f "$HERE/schema.sql" >/dev/null ||
    die "loading schema.sql into PostgreSQL failed"
}

run_replay() {
  local source=$SCHEMA_FROM gen_conn
  if [[ $source == auto ]]; then (( LOADER_OK )) && source=shoal || source=postgres; fi
  if [[ $source == shoal ]]; then
    (( LOADER_OK )) || die "--schema-from shoal: sqlsmith's schema loader fails on Shoal (see $OUT/schema-probe.log)"
    gen_conn=$CONN
  else
    start_pg
    gen_conn=$PG_CONN
  fi
  SMITH_NOTE="queries generated by sqlsmith --dry-run from the catalog of $source"
  say "sqlsmith --dry-run --seed=$SEED --max-queries=$QUERIES, schema from $source"
  timeout 1800 "$SQLSMITH" --target="$gen_conn" --dry-run --seed="$SEED" --max-queries="$QUERIES" \
    $CATALOG_FLAG >"$OUT/queries.sql" 2>"$OUT/sqlsmith.log" ||
    { tail -n 5 "$OUT/sqlsmith.log" >&2; die "sqlsmith --dry-run failed"; }
  if (( PG_STARTED )); then
    as_pg "$PG_BINDIR/pg_ctl" -D "$WORK/pg/data" -m fast -t 60 stop >/dev/null 2>&1 && PG_STARTED=0
  fi
  say "replaying them on Shoal (statement_timeout ${STATEMENT_TIMEOUT}s, hang after ${HANG_SECS}s)"
  local rc=0
  python3 "$HERE/replay.py" --conn "$CONN connect_timeout=5" --queries "$OUT/queries.sql" \
    --out "$OUT" --node-log "$NODE_LOG" --node-pid "$SHOAL_PID" \
    --statement-timeout "$STATEMENT_TIMEOUT" --hang-secs "$HANG_SECS" \
    --max-seconds "$SECONDS_BUDGET" --strip-tablesample || rc=$?
  (( rc == 0 || rc == 3 || rc == 4 )) || die "replay.py failed (status $rc)"
}

if [[ $MODE == live ]]; then run_live; else run_replay; fi
ELAPSED=$(( SECONDS - STARTED ))

# --- is the node still healthy? ------------------------------------------------
ALIVE=yes PANICS=0 ANSWERS=yes
kill -0 "$SHOAL_PID" 2>/dev/null || ALIVE=no
PANICS=$(grep -c 'panicked' "$NODE_LOG" || true)
if [[ $ALIVE == no ]] || ! select_1 "$CONN" 10; then ANSWERS=no; fi

field() { sed -n "s/^$1: //p" "$OUT/summary.txt" | head -n1; }
{
  echo "sqlsmith fuzz run: mode $MODE, seed $SEED, $QUERIES queries asked for, ${ELAPSED}s"
  [[ $MODE == replay ]] && echo "  ($SMITH_NOTE)"
  echo "sqlsmith schema loader on Shoal: $( (( LOADER_OK )) && echo works || echo "fails: $(grep -v '^SQLsmith' "$OUT/schema-probe.log" | tr '\n' ' ' | cut -c1-200)")"
  sed 's/^/  /' "$OUT/summary.txt"
  if [[ -s $OUT/errors_by_sqlstate.tsv ]]; then
    echo "errors by SQLSTATE:"; head -n 15 "$OUT/errors_by_sqlstate.tsv" | sed 's/^/  /'
  fi
  if [[ -s $OUT/errors_by_class.tsv ]]; then
    echo "most frequent error messages:"; head -n 15 "$OUT/errors_by_class.tsv" | cut -c1-150 | sed 's/^/  /'
  fi
  echo "node: process alive: $ALIVE; \"panicked\" lines in its log: $PANICS; answers SELECT 1: $ANSWERS"
  n=$(find "$FINDINGS_DIR" -name '*.sql' | wc -l)
  echo "findings: $n statement(s) in $FINDINGS_DIR"
  find "$FINDINGS_DIR" -name '*.sql' -printf '  %f\n' | sort | head -n 30
} | tee "$OUT/report.txt"

FAILED=0
[[ $ALIVE == yes && $ANSWERS == yes && $PANICS == 0 ]] || FAILED=1
ls "$FINDINGS_DIR" | grep -qE -- '-(panic|crash|hang)\.sql$' && FAILED=1
[[ $(field stopped_by) == hang || $(field stopped_by) == "unrecoverable hang" ]] && FAILED=1
if (( FAILED )); then say "FAILED: the node crashed, panicked or hung"; exit 1; fi
say "ok: the node stayed healthy"
