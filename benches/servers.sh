# benches/servers.sh — a throwaway PostgreSQL cluster and a throwaway Shoal
# node for a benchmark run, on loopback ports. Sourced after lib.sh.
#
# The caller sets WORK (a temporary directory), PG_BIN (find_pg_bindir),
# PG_PORT/PG_CONN, SHOAL_BIN_ABS, SHOAL_PORT/SHOAL_LISTEN_PORT/SHOAL_CONN and
# READY_TIMEOUT, and calls stop_shoal and stop_pg from its exit trap.

PG_STARTED=0
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
  wait_ready "$PG_CONN" "" || die "PostgreSQL does not answer on 127.0.0.1:$PG_PORT"
}

start_shoal() {
  mkdir -p "$WORK/shoal"
  NO_COLOR=1 "$SHOAL_BIN_ABS" start --store "$WORK/shoal/store" \
    --sql-addr "127.0.0.1:$SHOAL_PORT" --listen-addr "127.0.0.1:$SHOAL_LISTEN_PORT" \
    >"$WORK/shoal/shoal.log" 2>&1 &
  SHOAL_PID=$!
  if ! wait_ready "$SHOAL_CONN" "$SHOAL_PID"; then
    tail -n 30 "$WORK/shoal/shoal.log" >&2
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

