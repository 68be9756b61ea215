#!/usr/bin/env bash
# benches/txn.sh — transactions: Shoal against PostgreSQL, same machine,
# same run.
#
# What it measures
#   Three pgbench workloads over an `accounts` table (id, balance), each at
#   1, 8 and 32 clients, against a throwaway PostgreSQL cluster and a
#   throwaway single Shoal node whose table is split into 10 ranges:
#     single-row   UPDATE accounts SET balance = balance + 1 WHERE id = :id
#                  (autocommit: one range, one Raft round on Shoal)
#     transfer     BEGIN; two UPDATEs moving 1 between two random accounts;
#                  COMMIT (most pairs span two ranges: two-phase on Shoal)
#     contended    the transfer, between 10 hot accounts
#     contended-rc the same under READ COMMITTED on both: writers wait for
#                  each other's row locks instead of failing
#   For every run: transactions/s, average latency, and failed transactions
#   (serialization failures, 40001, and deadlocks, 40P01 — PostgreSQL's
#   default READ COMMITTED waits for row locks instead of failing with
#   40001) as a share of all.
#   After the transfers the sum of all balances is checked on both
#   databases: transfers move money, never create or lose it.
#
# Usage
#   benches/txn.sh            10000 accounts, 1 8 32 clients, 15 s per run
#   benches/txn.sh --smoke    1000 accounts, 1 and 8 clients, 3 s per run
#   Environment: SHOAL_BIN, PG_BINDIR, BENCH_CLIENTS, BENCH_TIME,
#   BENCH_ACCOUNTS, BENCH_TMPDIR.
#   Writes benches/results/txn-<date>.md (the server logs in
#   benches/results/txn-<date>/) and prints it. Both servers are stopped
#   (pg_ctl; Shoal by its pid) and the temporary directory removed on exit.
#   Only loopback addresses are used; every step has a time bound.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benches/lib.sh
source "$REPO_ROOT/benches/lib.sh"
# shellcheck source=benches/servers.sh
source "$REPO_ROOT/benches/servers.sh"
smoke_flag "$0" "$@"

if (( SMOKE )); then
  CLIENTS=${BENCH_CLIENTS:-"1 8"} RUN_TIME=${BENCH_TIME:-3} ACCOUNTS=${BENCH_ACCOUNTS:-1000}
else
  CLIENTS=${BENCH_CLIENTS:-"1 8 32"} RUN_TIME=${BENCH_TIME:-15} ACCOUNTS=${BENCH_ACCOUNTS:-10000}
fi
HOT=10
READY_TIMEOUT=60
WORKLOADS="single-row transfer contended contended-rc"

command -v pgbench >/dev/null 2>&1 || PATH=$PATH:$(find_pg_bindir)
command -v pgbench >/dev/null 2>&1 || install_debs postgresql
PG_BIN=$(find_pg_bindir)
PATH=$PATH:$PG_BIN
SHOAL_BIN_ABS=$(find_shoal_bin)

bench_init txn

log "starting PostgreSQL and Shoal"
start_pg
start_shoal

# The same rows on both; Shoal's table in 10 ranges.
setup_sql() {
  echo "CREATE TABLE accounts (id integer PRIMARY KEY, balance bigint NOT NULL);"
  echo "INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, $ACCOUNTS) AS g(g);"
}
psql_run "$PG_CONN" 300 -c "$(setup_sql)" >/dev/null
psql_run "$SHOAL_CONN" 300 -c "$(setup_sql)" >/dev/null
splits=$(seq -s '), (' $(( ACCOUNTS / 10 + 1 )) $(( ACCOUNTS / 10 )) "$ACCOUNTS" | sed 's/^/(/; s/$/)/')
psql_run "$SHOAL_CONN" 300 -c "ALTER TABLE accounts SPLIT AT VALUES $splits" >/dev/null
psql_run "$PG_CONN" 300 -c 'VACUUM ANALYZE' -c 'CHECKPOINT' >/dev/null

cat >"$WORK/single-row.sql" <<EOF
\\set id random(1, $ACCOUNTS)
UPDATE accounts SET balance = balance + 1 WHERE id = :id;
EOF
transfer_script() { # transfer_script N [BEGIN]: a transfer between accounts 1..N
  cat <<EOF
\\set a random(1, $1)
\\set b random(1, $1)
${2:-BEGIN};
UPDATE accounts SET balance = balance - 1 WHERE id = :a;
UPDATE accounts SET balance = balance + 1 WHERE id = :b;
COMMIT;
EOF
}
transfer_script "$ACCOUNTS" >"$WORK/transfer.sql"
transfer_script "$HOT" >"$WORK/contended.sql"
transfer_script "$HOT" "BEGIN ISOLATION LEVEL READ COMMITTED" >"$WORK/contended-rc.sql"

declare -A TPS LAT FAILED
# run NAME CONNINFO WORKLOAD CLIENTS
run() {
  local name=$1 conn=$2 workload=$3 clients=$4 out key=$1/$3/$4
  out=$WORK/$name-$workload-$clients.out
  log "$name: $workload, $clients client(s), ${RUN_TIME}s"
  timeout $(( RUN_TIME + 120 )) pgbench "$conn" -n -M prepared -f "$WORK/$workload.sql" \
    -c "$clients" -j "$(( clients < 2 ? clients : 2 ))" -T "$RUN_TIME" >"$out" 2>&1 || true
  TPS[$key]=$(out_field 'tps = \([0-9.]*\) .*' "$out")
  LAT[$key]=$(out_field 'latency average = \([0-9.]*\) ms.*' "$out")
  FAILED[$key]=$(out_field 'number of failed transactions: [0-9]* (\([0-9.]*\)%).*' "$out")
  [[ -n ${TPS[$key]} ]] || { log "$name $workload $clients: no result"; tail -n 5 "$out" >&2; }
}

total() { psql_run "$1" 60 -c 'SELECT sum(balance) FROM accounts' 2>/dev/null || echo "?"; }

declare -A BEFORE AFTER
for w in transfer contended contended-rc single-row; do
  if [[ $w == single-row ]]; then
    BEFORE[PostgreSQL]=$(total "$PG_CONN") BEFORE[Shoal]=$(total "$SHOAL_CONN")
  fi
  for c in $CLIENTS; do
    run PostgreSQL "$PG_CONN" "$w" "$c"
    run Shoal "$SHOAL_CONN" "$w" "$c"
  done
done
EXPECTED=$(( ACCOUNTS * 1000 ))

{
  echo "# Transactions: Shoal vs PostgreSQL — $STAMP"
  echo
  echo "- machine: $(nproc) cores; load average before the runs: $LOADAVG"
  echo "- PostgreSQL: $("$PG_BIN/postgres" --version | sed 's/^postgres (PostgreSQL) //') (fsync=on, synchronous_commit=on, READ COMMITTED)"
  echo "- Shoal: $("$SHOAL_BIN_ABS" --version 2>/dev/null || echo shoal) ($(basename "$(dirname "$SHOAL_BIN_ABS")") build), one node, SERIALIZABLE (its default; *contended-rc* READ COMMITTED on both), \`accounts\` in 10 ranges"
  echo "- $ACCOUNTS accounts ($HOT hot ones for *contended*); pgbench, prepared statements, ${RUN_TIME}s per run"
  echo
  echo "| workload | clients | PostgreSQL tps | Shoal tps | Shoal/PG | PostgreSQL ms | Shoal ms | PostgreSQL failed % | Shoal failed (40001) % |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for w in $WORKLOADS; do
    for c in $CLIENTS; do
      p=PostgreSQL/$w/$c s=Shoal/$w/$c
      r=$(ratio "${TPS[$s]:-}" "${TPS[$p]:-}")
      printf '| %s | %s | %.0f | %.0f | %s | %s | %s | %s | %s |\n' "$w" "$c" \
        "${TPS[$p]:-0}" "${TPS[$s]:-0}" "$r" "${LAT[$p]:-—}" "${LAT[$s]:-—}" \
        "${FAILED[$p]:-0}" "${FAILED[$s]:-0}"
    done
  done
  echo
  echo "## Money kept"
  echo
  echo "Sum of all balances after the transfer runs (expected $EXPECTED):"
  echo "PostgreSQL ${BEFORE[PostgreSQL]}, Shoal ${BEFORE[Shoal]}."
} >"$REPORT"
cat "$REPORT"
log "report: ${REPORT#"$REPO_ROOT"/}"
[[ ${BEFORE[PostgreSQL]} == "$EXPECTED" && ${BEFORE[Shoal]} == "$EXPECTED" ]] ||
  die "a transfer run changed the total"
