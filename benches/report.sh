# benches/report.sh — the parts of a Shoal-vs-PostgreSQL report that
# sysbench.sh and pgbench.sh share (sourced after lib.sh and servers.sh).
#
# Results live in associative arrays keyed "WORKLOAD|CLIENTS|SERVER" (SERVER
# is PostgreSQL or Shoal): TXNS (committed transactions), TPS, AVG, P50, P95,
# P99 (latency, ms), CPU_TICKS and FSYNCS (from `measure`) and FAIL (why a
# run failed; other FAIL keys name other steps). The caller sets WORKLOADS
# and CLIENTS (space-separated lists) and POSTGRES_ONLY.
#
#   report_header TITLE  the title and the machine/server/commit lines
#   results_md WORD EXTRA_HEAD EXTRA_FN
#                        the throughput, latency and cost tables; WORD names
#                        the client column ("threads", "clients"); EXTRA_FN
#                        PGKEY SHOALKEY prints the throughput table's extra
#                        cells, under EXTRA_HEAD ("| a | b |")
#   charts_md TITLE WORD draws LOG_DIR/throughput.png and LOG_DIR/latency.png
#                        with gnuplot and prints the links to them
#   failures_md          the Failures section, if any step failed
#   finish_report MSG    prints the report; then exits non-zero if the
#                        harness failed, or with MSG if INVARIANT_BROKEN=1
#   harness_failed       true if a step failed on PostgreSQL (the reference:
#                        then the harness, not Shoal, is broken), the
#                        charts were not drawn, or — in a smoke run — any
#                        step failed

declare -A TXNS=() TPS=() AVG=() P50=() P95=() P99=() FAIL=()
SERVERS="PostgreSQL Shoal"

report_header() {
  local fstype profile
  fstype=$(df --output=fstype "$WORK" 2>/dev/null | tail -n1 || echo "?")
  echo "# $1 — $STAMP"
  echo
  echo "- machine: $(nproc) cores, Linux $(uname -r), stores on $fstype; load average before the runs: $LOADAVG"
  echo "- PostgreSQL: $("$PG_BIN/postgres" --version | sed 's/^postgres (PostgreSQL) //') (fsync=on, synchronous_commit=on, otherwise defaults)"
  if (( POSTGRES_ONLY )); then
    echo "- Shoal: skipped (--postgres-only)"
  else
    profile=$(basename "$(dirname "$SHOAL_BIN_ABS")")
    [[ $profile == release || $profile == debug ]] || profile="unknown-profile"
    echo "- Shoal: $("$SHOAL_BIN_ABS" --version 2>/dev/null || echo shoal) ($profile build$([[ $profile == debug ]] && echo ' — NOT meaningful for speed goals; use a release build')), one node"
  fi
  echo "- commit: $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo none)$( [[ -n $(git -C "$REPO_ROOT" status --porcelain 2>/dev/null | head -n1) ]] && echo ' (with uncommitted changes)')"
}

# ---------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------

ok_run() { [[ -n ${TPS[$1]:-} && -z ${FAIL[$1]:-} ]]; }
tps_cell() {
  if [[ -n ${FAIL[$1]:-} ]]; then echo "failed"
  elif [[ -n ${TPS[$1]:-} ]]; then echo "${TPS[$1]}"
  elif [[ -n ${FAIL[load-${1##*|}]:-} ]]; then echo "not run (load failed)"
  else echo "—"; fi
}
val() { # val ARRAY KEY: the value of a successful run, else "—"
  local -n arr=$1
  if ok_run "$2" && [[ -n ${arr[$2]:-} ]]; then echo "${arr[$2]}"; else echo "—"; fi
}
num() { [[ $1 == "—" ]] && echo "" || echo "$1"; }
# per_txn KEY WHAT: server CPU ms per transaction, or fsyncs per transaction
per_txn() {
  ok_run "$1" || { echo "—"; return; }
  local n=${TXNS[$1]:-0} v
  if [[ $2 == cpu ]]; then v=${CPU_TICKS[$1]:-}; else v=${FSYNCS[$1]:-}; fi
  [[ -n $v && $n -gt 0 ]] || { echo "—"; return; }
  if [[ $2 == cpu ]]; then
    awk -v t="$v" -v hz="$(getconf CLK_TCK)" -v n="$n" 'BEGIN { printf "%.3f", t * 1000 / hz / n }'
  else
    awk -v f="$v" -v n="$n" 'BEGIN { printf "%.2f", f / n }'
  fi
}
# trio A B: "A | B | B/A" — PostgreSQL's figure, Shoal's, and their ratio
trio() { echo "$1 | $2 | $(ratio "$(num "$2")" "$(num "$1")")"; }

# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------

results_md() {
  local word=$1 extra_head=$2 extra_fn=$3 w c pk sk m
  echo "## Throughput"
  echo
  echo "Shoal/PostgreSQL above 1.00: Shoal is faster."
  echo
  echo "| workload | $word | PostgreSQL tps | Shoal tps | Shoal/PostgreSQL $extra_head"
  printf '|---|---:|---:|---:|---:|'
  printf -- '---:|%.0s' $(seq $(( $(tr -cd '|' <<<"$extra_head" | wc -c) - 1 )))
  echo
  for w in $WORKLOADS; do
    for c in $CLIENTS; do
      pk="$w|$c|PostgreSQL" sk="$w|$c|Shoal"
      echo "| $w | $c | $(trio "$(tps_cell "$pk")" "$(tps_cell "$sk")") | $("$extra_fn" "$pk" "$sk")"
    done
  done
  echo
  echo "## Latency per transaction (ms, client side)"
  echo
  echo "Shoal/PostgreSQL above 1.00: Shoal is slower."
  echo
  echo "| workload | $word | avg PG | avg Shoal | Shoal/PG | p50 PG | p50 Shoal | Shoal/PG | p95 PG | p95 Shoal | Shoal/PG | p99 PG | p99 Shoal | Shoal/PG |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for w in $WORKLOADS; do
    for c in $CLIENTS; do
      pk="$w|$c|PostgreSQL" sk="$w|$c|Shoal"
      printf '| %s | %s' "$w" "$c"
      for m in AVG P50 P95 P99; do printf ' | %s' "$(trio "$(val $m "$pk")" "$(val $m "$sk")")"; done
      echo " |"
    done
  done
  echo
  echo "## Server cost per transaction"
  echo
  echo "CPU: milliseconds of CPU (user + system) the server under test used per committed transaction. fsyncs: fsync + fdatasync calls per committed transaction, counted machine-wide. Shoal/PostgreSQL above 1.00: Shoal spends more."
  echo
  echo "| workload | $word | CPU ms PG | CPU ms Shoal | Shoal/PG | fsyncs PG | fsyncs Shoal | Shoal/PG |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for w in $WORKLOADS; do
    for c in $CLIENTS; do
      pk="$w|$c|PostgreSQL" sk="$w|$c|Shoal"
      echo "| $w | $c | $(trio "$(per_txn "$pk" cpu)" "$(per_txn "$sk" cpu)") | $(trio "$(per_txn "$pk" fsync)" "$(per_txn "$sk" fsync)") |"
    done
  done
  (( PERF_OK )) || { echo; echo "fsyncs were not counted: $PERF_NOTE."; }
}

failures_md() {
  (( ${#FAIL[@]} )) || return 0
  local k
  echo
  echo "## Failures"
  echo
  for k in $(printf '%s\n' "${!FAIL[@]}" | sort); do
    echo "- \`$(tr '|' '/' <<<"$k")\`: $(tr '|\n' '/ ' <<<"${FAIL[$k]}")"
  done
}

harness_failed() {
  local k
  # A smoke run (CI) uses tiny tables that Shoal must handle: there any
  # failure, Shoal's included, fails the run (BENCH_STRICT=0 turns that off).
  (( ${BENCH_STRICT:-${SMOKE:-0}} && ${#FAIL[@]} )) && return 0
  for k in "${!FAIL[@]}"; do
    [[ $k == *PostgreSQL* || $k == charts ]] && return 0
  done
  return 1
}

# ---------------------------------------------------------------------------
# Charts
# ---------------------------------------------------------------------------

# chart_data FILE: one block per workload (blocks separated by two blank
# lines, for gnuplot's `index`), a line per client count:
#   clients tps_pg tps_shoal p50_pg p95_pg p99_pg p50_shoal p95_shoal p99_shoal
chart_data() {
  local w c s m v
  for w in $WORKLOADS; do
    for c in $CLIENTS; do
      printf '%s' "$c"
      for s in $SERVERS; do v=$(num "$(val TPS "$w|$c|$s")"); printf ' %s' "${v:-NaN}"; done
      for s in $SERVERS; do
        for m in P50 P95 P99; do v=$(num "$(val $m "$w|$c|$s")"); printf ' %s' "${v:-NaN}"; done
      done
      echo
    done
    printf '\n\n'
  done >"$1"
}

has_data() { # has_data WORKLOAD ARRAY: any successful run with a value
  local c s
  for c in $CLIENTS; do
    for s in $SERVERS; do [[ $(val "$2" "$1|$c|$s") != "—" ]] && return 0; done
  done
  return 1
}

# panel_plot IDX WORKLOAD ARRAY PLOT: PLOT for this panel, or an empty,
# labelled panel when no run of the workload has data (gnuplot stops on
# a plot with no valid point).
panel_plot() {
  echo "set title \"$2\""
  if has_data "$2" "$3"; then
    echo "$4"
  else
    echo "set title \"$2 (no data)\"; unset logscale y; set yrange [0:1]; plot 1/0 notitle"
  fi
}

chart_script() { # chart_script DATA WORD TITLE
  local data=$1 word=$2 title=$3 n cols rows i=0 w lo hi xt term=png
  n=$(wc -w <<<"$WORKLOADS"); cols=$(( n < 3 ? n : 3 )); rows=$(( (n + cols - 1) / cols ))
  lo=$(tr ' ' '\n' <<<"$CLIENTS" | sort -n | head -n1); hi=$(tr ' ' '\n' <<<"$CLIENTS" | sort -n | tail -n1)
  xt=$(tr -s ' ' '\n' <<<"$CLIENTS" | grep . | paste -sd, -)
  gnuplot -e 'set terminal' 2>&1 | grep -q pngcairo && term=pngcairo
  cat <<EOF
set terminal $term size $(( cols * 460 )),$(( rows * 380 + 40 ))
set termoption noenhanced
set datafile missing "NaN"
set logscale x 2
set xrange [$lo / 1.3:$hi * 1.3]
set xtics ($xt)
set xlabel "$word"
set grid
set key below horizontal font ",8"
set offsets 0, 0, graph 0.05, 0
pg = "#3366aa"; sh = "#dd6600"
set output "throughput.png"
set multiplot layout $rows,$cols title "$title: transactions/s against $word"
set ylabel "transactions/s"
EOF
  for w in $WORKLOADS; do
    panel_plot "$i" "$w" TPS "set yrange [0:*]; plot \"$data\" index $i using 1:2 with linespoints lw 2 pt 7 lc rgb pg title \"PostgreSQL\", \"\" index $i using 1:3 with linespoints lw 2 pt 5 lc rgb sh title \"Shoal\""
    i=$(( i + 1 ))
  done
  cat <<EOF
unset multiplot
set output "latency.png"
set multiplot layout $rows,$cols title "$title: latency percentiles (ms, log scale) against $word"
set ylabel "ms"
set offsets 0, 0, 0, 0
EOF
  i=0
  for w in $WORKLOADS; do
    panel_plot "$i" "$w" P99 "set logscale y; set autoscale y; plot for [k=0:2] \"$data\" index $i using 1:(column(4 + k)) with linespoints lw 2 dt k+1 pt 7 lc rgb pg title sprintf(\"PostgreSQL p%s\", word(\"50 95 99\", k + 1)), for [k=0:2] \"\" index $i using 1:(column(7 + k)) with linespoints lw 2 dt k+1 pt 5 lc rgb sh title sprintf(\"Shoal p%s\", word(\"50 95 99\", k + 1))"
    i=$(( i + 1 ))
  done
  echo "unset multiplot"
}

charts_md() {
  local title=$1 word=$2 base
  base=$(basename "$LOG_DIR")
  echo "## Charts"
  echo
  if ! command -v gnuplot >/dev/null 2>&1; then
    FAIL[charts]="gnuplot is not installed"
    echo "Not drawn: gnuplot is not installed."
    return 0
  fi
  chart_data "$LOG_DIR/chart-data.txt"
  # Relative names, from inside LOG_DIR: the script can be rerun from there.
  chart_script chart-data.txt "$word" "$title" >"$LOG_DIR/charts.gp"
  if (cd "$LOG_DIR" && timeout 120 gnuplot charts.gp) >"$WORK/gnuplot.log" 2>&1 &&
     [[ -s $LOG_DIR/throughput.png && -s $LOG_DIR/latency.png ]]; then
    echo "![transactions/s against $word]($base/throughput.png)"
    echo
    echo "![latency percentiles against $word]($base/latency.png)"
  else
    FAIL[charts]="gnuplot failed: $(grep -v '^$' "$WORK/gnuplot.log" | tail -n 3 | tr '\n' ' ')"
    echo "Not drawn: gnuplot failed (see Failures; the script is $base/charts.gp)."
  fi
}

finish_report() {
  echo
  cat "$REPORT"
  echo
  log "report: ${REPORT#"$REPO_ROOT"/}"
  if harness_failed; then
    die "a step failed on PostgreSQL (or, in a smoke run, anywhere) or the charts were not drawn (see Failures)"
  fi
  (( ! ${INVARIANT_BROKEN:-0} )) || die "$1"
}
