# benches/servers.sh — a throwaway PostgreSQL cluster and a throwaway Shoal
# node for a benchmark run, on loopback ports. Sourced after lib.sh.
#
#   bench_init NAME      everything a comparison script needs before starting
#                        the servers: SMOKE-dependent STAMP, REPORT and LOG_DIR
#                        (benches/results/NAME-STAMP), a temporary WORK
#                        directory, the exit trap (bench_cleanup: stop both
#                        servers, keep their logs in LOG_DIR, remove WORK),
#                        free ports and PG_CONN / SHOAL_CONN
#   start_servers        fsync_floor, perf_check, then start_pg and (unless
#                        POSTGRES_ONLY) start_shoal; SHOAL_OK=1 once Shoal
#                        answers
#   start_pg, start_shoal, stop_pg, stop_shoal
#   load_both FN         FN PostgreSQL, then FN Shoal (if SHOAL_OK): a
#                        failure on PostgreSQL stops the script, on Shoal it
#                        leaves Shoal out of the runs (FAIL[load-NAME] says why)
#   each_run FN          FN SERVER WORKLOAD CLIENTS for every workload and
#                        client count, PostgreSQL then Shoal (while it runs)
#   settle_shoal         wait until Shoal's background work after a load is done
#   shoal_alive          SHOAL_OK=0 (and a FAIL entry) once the node has exited
#   measure NAME KEY CMD...  run a benchmark client CMD against server NAME
#                        (PostgreSQL or Shoal), recording the server's CPU
#                        ticks (CPU_TICKS[KEY]) and the machine's fsync +
#                        fdatasync calls (FSYNCS[KEY]) over the run
#   conn_of NAME         PG_CONN or SHOAL_CONN
#   psql_run CONNINFO TIMEOUT ARGS...
#
# Callers that do not use bench_init set WORK, PG_BIN (find_pg_bindir),
# PG_PORT/PG_CONN, SHOAL_BIN_ABS, SHOAL_PORT/SHOAL_LISTEN_PORT/SHOAL_CONN and
# READY_TIMEOUT themselves, and call stop_shoal and stop_pg from their exit
# trap.

PG_STARTED=0
PG_PID=""
SHOAL_PID=""

# PostgreSQL's server binaries (initdb, pg_ctl, postgres) are not on PATH on
# Debian; ask dpkg where the installed major version put them.
find_pg_bindir() {
  if [[ -n ${PG_BINDIR:-} ]]; then echo "$PG_BINDIR"; return; fi
  local pkg initdb=""
  pkg=$(dpkg-query -W -f='${Depends}' postgresql 2>/dev/null | grep -o 'postgresql-[0-9][0-9]*' | head -n1 || true)
  [[ -n $pkg ]] && initdb=$(dpkg -L "$pkg" 2>/dev/null | grep '/bin/initdb$' | head -n1 || true)
  [[ -z $initdb ]] && initdb=$(command -v initdb || true)
  [[ -n $initdb ]] || die "initdb not found; set PG_BINDIR"
  dirname "$initdb"
}

# Run a PostgreSQL server binary as the `postgres` OS user when we are root
# (PostgreSQL refuses to run as root), from a directory that user can read.
as_pg() {
  if [[ $(id -u) == 0 ]]; then
    (cd "$WORK/pg" && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

stop_shoal() {
  stop_pid "$SHOAL_PID" shoal
  SHOAL_PID=""
}

stop_pg() {
  (( PG_STARTED )) || return 0
  as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -m fast -t 60 stop >/dev/null 2>&1 ||
    as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -m immediate -t 30 stop >/dev/null 2>&1 ||
    log "pg_ctl stop failed; the cluster in $WORK/pg/data may still run"
  PG_STARTED=0
}

scrub() { # scrub SRC DST
  [[ -f $1 ]] || return 0
  awk -v w="$WORK" '{ gsub(/\033\[[0-9;]*m/, ""); while ((i = index($0, w)) > 0) $0 = substr($0, 1, i - 1) "<tmpdir>" substr($0, i + length(w)); print }' "$1" >"$2"
}

start_pg() {
  mkdir -p "$WORK/pg"
  [[ $(id -u) == 0 ]] && chown postgres:postgres "$WORK/pg"
  as_pg "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres --auth=trust \
    -E UTF8 --locale=C >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
  # Durability settings are the defaults; set them anyway so the comparison
  # never silently runs against an asynchronous PostgreSQL.
  cat >>"$WORK/pg/data/postgresql.conf" <<EOF

# benches (a throwaway cluster)
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = ''
fsync = on
synchronous_commit = on
EOF
  as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/server.log" -w -t "$READY_TIMEOUT" start >/dev/null ||
    { cat "$WORK/pg/server.log" >&2; die "PostgreSQL did not start"; }
  PG_STARTED=1
  PG_PID=$(head -n1 "$WORK/pg/data/postmaster.pid")
  wait_ready "$PG_CONN" "" || die "PostgreSQL does not answer on 127.0.0.1:$PG_PORT"
}

start_shoal() {
  mkdir -p "$WORK/shoal"
  NO_COLOR=1 "$SHOAL_BIN_ABS" start --store "$WORK/shoal/store" \
    --sql-addr "127.0.0.1:$SHOAL_PORT" --listen-addr "127.0.0.1:$SHOAL_LISTEN_PORT" \
    >"$WORK/shoal/shoal.log" 2>&1 &
  SHOAL_PID=$!
  if ! wait_ready "$SHOAL_CONN" "$SHOAL_PID"; then
    # The log's last lines without the frames of a backtrace, so that the
    # error itself shows.
    grep -Ev '^ +([0-9]+: |at )' "$WORK/shoal/shoal.log" | tail -n 30 >&2
    die "Shoal did not accept connections on 127.0.0.1:$SHOAL_PORT within ${READY_TIMEOUT}s"
  fi
}

# wait_ready CONNINFO [PID]: poll `select 1` for up to READY_TIMEOUT seconds;
# give up early if PID dies.
wait_ready() {
  local deadline=$(( SECONDS + READY_TIMEOUT ))
  while (( SECONDS < deadline )); do
    if [[ -n $2 ]] && ! kill -0 "$2" 2>/dev/null; then return 1; fi
    PGCONNECT_TIMEOUT=2 timeout 5 psql "$1" -X -q -At -c 'select 1' >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

# psql_run CONNINFO TIMEOUT ARGS...: psql that stops at the first error.
psql_run() {
  local conn=$1 limit=$2; shift 2
  PGCONNECT_TIMEOUT=5 timeout "$limit" psql "$conn" -X -q -At -v ON_ERROR_STOP=1 "$@"
}

# ---------------------------------------------------------------------------
# A comparison run's scaffolding
# ---------------------------------------------------------------------------

bench_init() {
  local name=$1
  READY_TIMEOUT=${READY_TIMEOUT:-60}
  RESULTS_DIR=$REPO_ROOT/benches/results
  STAMP=$(date -u +%Y%m%d-%H%M%S)
  (( SMOKE )) && STAMP=$STAMP-smoke
  REPORT_NAME=$name
  REPORT=$RESULTS_DIR/$name-$STAMP.md
  LOG_DIR=$RESULTS_DIR/$name-$STAMP
  mkdir -p "$LOG_DIR"
  WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/shoal-$name.XXXXXX")
  chmod 711 "$WORK"   # the postgres user must reach its data directory
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  pick_port PG_PORT
  pick_port SHOAL_PORT
  pick_port SHOAL_LISTEN_PORT
  PG_CONN="host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres"
  SHOAL_CONN="host=127.0.0.1 port=$SHOAL_PORT user=shoal dbname=shoal"
  # Other work on the machine skews everything; the report records how busy it was.
  LOADAVG=$(uptime | sed 's/.*load average: //')
}

start_servers() {
  fsync_floor "$WORK"
  perf_check
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  start_pg
  SHOAL_OK=0
  (( POSTGRES_ONLY )) && return 0
  log "starting Shoal ($SHOAL_BIN_ABS) on 127.0.0.1:$SHOAL_PORT"
  start_shoal
  SHOAL_OK=1
}

bench_cleanup() {
  local rc=$?
  set +e
  stop_shoal
  stop_pg
  if [[ -n ${WORK:-} && -d $WORK ]]; then
    # Keep the server logs next to the raw outputs, with the temporary
    # directory's name replaced: nothing outside the repository is named in
    # the results.
    if [[ -n ${LOG_DIR:-} && -d $LOG_DIR ]]; then
      scrub "$WORK/pg/server.log" "$LOG_DIR/postgresql.log"
      scrub "$WORK/shoal/shoal.log" "$LOG_DIR/shoal.log"
    fi
    rm -rf "$WORK"
  fi
  exit "$rc"
}

load_both() {
  "$1" PostgreSQL || die "${FAIL[load-PostgreSQL]}"
  (( SHOAL_OK )) || return 0
  "$1" Shoal || { SHOAL_OK=0; log "Shoal: ${FAIL[load-Shoal]}"; }
}

each_run() {
  local w c
  for w in $WORKLOADS; do
    for c in $CLIENTS; do
      "$1" PostgreSQL "$w" "$c"
      if shoal_alive; then "$1" Shoal "$w" "$c"; fi
    done
  done
}

# settle_shoal: waits (at most SETTLE_TIMEOUT s, default 180) until the
# Shoal process has used under 5% of a core for two seconds running — its
# background work (compactions after a load, splits) is done.
settle_shoal() {
  local deadline=$(( SECONDS + ${SETTLE_TIMEOUT:-180} )) before after hz
  hz=$(getconf CLK_TCK)
  log "waiting for Shoal's background work to finish"
  while (( SECONDS < deadline )); do
    before=$(awk '{ print $14 + $15 }' "/proc/$SHOAL_PID/stat" 2>/dev/null) || return 0
    sleep 2
    after=$(awk '{ print $14 + $15 }' "/proc/$SHOAL_PID/stat" 2>/dev/null) || return 0
    (( (after - before) * 100 < 2 * hz * 5 )) && return 0
  done
  log "Shoal was still busy after ${SETTLE_TIMEOUT:-180}s; measuring anyway"
}

shoal_alive() {
  (( SHOAL_OK )) || return 1
  kill -0 "$SHOAL_PID" 2>/dev/null && return 0
  FAIL[shoal-process]="the Shoal node exited during the runs (see shoal.log)"
  SHOAL_OK=0
  return 1
}

# ---------------------------------------------------------------------------
# Server-side cost of a run
# ---------------------------------------------------------------------------

# wait_clients_gone NAME: after a client has disconnected, PostgreSQL's
# backends for it exit and are reaped by the postmaster (at most 10 s), so
# their CPU time is in the postmaster's cutime/cstime. Shoal serves
# connections in its own process: nothing to wait for.
wait_clients_gone() {
  [[ $1 == PostgreSQL ]] || return 0
  local _
  for _ in $(seq 100); do
    if ! pgrep -P "$PG_PID" -f '127\.0\.0\.1\(' >/dev/null && ! pgrep -P "$PG_PID" -r Z >/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  log "PostgreSQL still had client backends 10 s after the run; measuring anyway"
}

conn_of() { if [[ $1 == PostgreSQL ]]; then echo "$PG_CONN"; else echo "$SHOAL_CONN"; fi; }

server_pid() { if [[ $1 == PostgreSQL ]]; then echo "$PG_PID"; else echo "$SHOAL_PID"; fi; }

declare -A CPU_TICKS=() FSYNCS=()
measure() {
  local name=$1 key=$2 pid before after rc=0; shift 2
  pid=$(server_pid "$name")
  wait_clients_gone "$name"
  before=$(proc_cpu_ticks "$pid")
  fsync_counted "$WORK/perf.txt" "$@" || rc=$?
  wait_clients_gone "$name"
  after=$(proc_cpu_ticks "$pid")
  CPU_TICKS[$key]=$(( after - before ))
  FSYNCS[$key]=$(fsyncs_in "$WORK/perf.txt")
  return "$rc"
}
