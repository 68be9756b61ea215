#!/usr/bin/env bash
# tests/differential/run.sh — start a throwaway PostgreSQL cluster and a
# throwaway Shoal node on loopback ports, run differential.py against both,
# stop both (by pid, from the exit trap) and remove the temporary directory.
#
#   tests/differential/run.sh [differential.py arguments...]
#       e.g. run.sh --seed 7 --seconds 600
#            run.sh --seed 1 --queries 300 --allow-failures
#
# The exit status is differential.py's: 1 on any failure (value, error,
# dml-state, crash) or setup problem, 0 otherwise. With --allow-failures the
# value / error / dml-state failures are reported in full but leave the exit
# status 0; a crash or a setup problem still exits 1 -- and so does a Shoal
# node that exited during the run, which this script checks afterwards.
#
# Environment:
#   SHOAL_BIN       the shoal binary (default: as benches/lib.sh finds it)
#   PG_BINDIR       PostgreSQL's server binaries (default: from dpkg)
#   PYTHON          a Python 3 with psycopg 3 (default: python3)
#   PG_PORT, SHOAL_PORT, SHOAL_LISTEN_PORT   fixed loopback ports (default: picked free)
#   KEEP_LOGS=1     keep the temporary directory (server logs) instead of removing it
#   KEEP_SERVERS=1  do not run the tester; print the connection strings and
#                   wait (Ctrl-C stops both servers) — for reproducing by hand
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=../../benches/lib.sh
source "$REPO_ROOT/benches/lib.sh"
# shellcheck source=../../benches/servers.sh
source "$REPO_ROOT/benches/servers.sh"

READY_TIMEOUT=${READY_TIMEOUT:-60}
PG_BIN=$(find_pg_bindir)
SHOAL_BIN_ABS=$(find_shoal_bin)
PYTHON=${PYTHON:-python3}

WORK=$(mktemp -d -t shoal-differential.XXXXXX)
chmod 711 "$WORK"   # the postgres user must reach its data directory
cleanup() {
  local rc=$?
  set +e
  stop_shoal
  stop_pg
  if [[ -n ${KEEP_LOGS:-} ]]; then
    log "logs kept in $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[[ -n ${PG_PORT:-} ]] || pick_port PG_PORT
[[ -n ${SHOAL_PORT:-} ]] || pick_port SHOAL_PORT
[[ -n ${SHOAL_LISTEN_PORT:-} ]] || pick_port SHOAL_LISTEN_PORT
PG_CONN="host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres"
SHOAL_CONN="host=127.0.0.1 port=$SHOAL_PORT user=shoal dbname=shoal"

log "starting PostgreSQL ($PG_BIN) on 127.0.0.1:$PG_PORT"
start_pg
# The benches' cluster is initdb --locale=C. Compare in a database that
# keeps C (byte-order) collation, as Shoal's, but has a UTF-8 ctype, so that
# upper / lower / ILIKE handle non-ASCII letters as Shoal does.
if psql_run "$PG_CONN" 30 -c "CREATE DATABASE difftest TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C.UTF-8'" >/dev/null 2>&1 ||
   psql_run "$PG_CONN" 30 -c "CREATE DATABASE difftest TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C.utf8'" >/dev/null 2>&1; then
  PG_CONN="host=127.0.0.1 port=$PG_PORT user=postgres dbname=difftest"
else
  log "no C.UTF-8 locale: comparing in database postgres (ctype C: upper/lower of non-ASCII letters will differ)"
fi
log "starting Shoal ($SHOAL_BIN_ABS) on 127.0.0.1:$SHOAL_PORT"
start_shoal

if [[ -n ${KEEP_SERVERS:-} ]]; then
  log "PostgreSQL: psql \"$PG_CONN\""
  log "Shoal:      psql \"$SHOAL_CONN\""
  log "Ctrl-C (or SIGTERM to pid $$) stops both"
  while kill -0 "$SHOAL_PID" 2>/dev/null; do sleep 1; done
  log "Shoal exited"
  exit 1
fi

rc=0
"$PYTHON" "$HERE/differential.py" --pg "$PG_CONN" --shoal "$SHOAL_CONN" "$@" || rc=$?
if ! kill -0 "$SHOAL_PID" 2>/dev/null; then
  log "the Shoal node exited during the run; its log's tail:"
  grep -Ev '^ +([0-9]+: |at )' "$WORK/shoal/shoal.log" | tail -n 30 >&2
  rc=1
fi
exit "$rc"
