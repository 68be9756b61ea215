# benches/lib.sh — helpers shared by the benchmark scripts (sourced).
#
#   log / die            messages on stderr, prefixed [bench]
#   install_debs PKG...  apt-get install the packages (root or sudo), bounded
#   find_shoal_bin       SHOAL_BIN, else the release build, else the debug one
#   pick_port VAR        a free, not yet handed out, loopback port
#   stop_pid PID NAME    SIGTERM, wait up to 10 s, then SIGKILL — that pid only
#   wait_port PORT       until something listens on 127.0.0.1:PORT (60 s)
#   dsync_ms FILE [conv] average ms of a 4 KiB O_DSYNC write (write + fdatasync)
#   smoke_flag SCRIPT ARGS...  sets SMOKE from --smoke (and POSTGRES_ONLY from
#                        --postgres-only, if the script set POSTGRES_ONLY=0
#                        first); --help prints the script's header comment;
#                        anything else is an error
#   need_debs PKG[:CMD]...  install_debs the packages dpkg lacks or whose
#                        command is not on PATH
#   ratio A B            A/B to two decimals, "—" unless both are numbers and B is not 0
#   per_sec MS           1000/MS, "—" for 0
#   out_field RE FILE    the \(group\) of the first line of FILE matching ^RE
#                        (sed's basic regular expressions)
#   pcts "P..."          from "value count" lines on stdin, sorted by value,
#                        the P-th percentile of each P (a histogram's bucket)
#   proc_cpu_ticks PID   clock ticks of CPU used by PID (user+system, its own
#                        and its waited-for children's) plus its live
#                        children's own
#   perf_check           PERF_OK=1 if perf can count fsync tracepoints, else
#                        PERF_OK=0 and PERF_NOTE says why
#   fsync_counted FILE CMD...  runs CMD, under perf when PERF_OK, counting
#                        fsync + fdatasync calls machine-wide into FILE;
#                        returns CMD's status
#   fsyncs_in FILE       the count fsync_counted wrote, or nothing
#   fsync_floor DIR      sets FSYNC_APPEND_MS / FSYNC_OVERWRITE_MS (dsync_ms
#                        on a file in DIR); fsync_floor_md prints them as a
#                        report section

log() { printf '[bench] %s\n' "$*" >&2; }

smoke_flag() {
  local script=$1 arg; shift
  SMOKE=0
  for arg in "$@"; do
    case $arg in
      --smoke) SMOKE=1 ;;
      --postgres-only) [[ -n ${POSTGRES_ONLY:-} ]] || { echo "$script has no --postgres-only" >&2; exit 2; }
        POSTGRES_ONLY=1 ;;
      -h|--help) sed -n '2,/^set -euo/p' "$script" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
      *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
  done
}
die() { log "error: $*"; exit 1; }

install_debs() {
  (( $# == 0 )) && return 0
  local sudo=()
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "missing packages: $* (run as root or install them)"
    sudo=(sudo)
  fi
  log "installing: $*"
  timeout 600 "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 900 "${sudo[@]}" apt-get install -y -qq "$@" >/dev/null
}

find_shoal_bin() {
  if [[ -n ${SHOAL_BIN:-} ]]; then
    [[ -x $SHOAL_BIN ]] || die "SHOAL_BIN=$SHOAL_BIN is not an executable"
    echo "$SHOAL_BIN"; return
  fi
  local c
  for c in ${CARGO_TARGET_DIR:+"$CARGO_TARGET_DIR/release/shoal"} \
           "$HOME/.cache/shoal/target/release/shoal" \
           "$HOME/.cache/shoal/target/debug/shoal"; do
    [[ -x $c ]] && { echo "$c"; return; }
  done
  die "no shoal binary; build one (cargo build --release --workspace), or set SHOAL_BIN"
}

# Ports come from below the kernel's ephemeral range: every outbound
# connection (a client, psql, a peer) takes its local port from that range,
# so a port picked there can be taken before the server binds it.
TAKEN_PORTS=" "
pick_port() {
  local p _ low=32768 first=20000
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || low=32768
  (( low - first >= 1000 )) || first=$(( low > 2024 ? low - 1000 : 1024 ))
  for _ in $(seq 200); do
    p=$(( first + RANDOM % (low - first) ))
    [[ $TAKEN_PORTS == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      TAKEN_PORTS+="$p "
      printf -v "$1" '%s' "$p"
      return 0
    fi
  done
  die "no free loopback port found"
}

wait_port() { # wait_port PORT: until something listens (60 s)
  local _
  for _ in $(seq 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing listens on 127.0.0.1:$1 after 60 s"
}

stop_pid() { # stop_pid PID NAME
  local pid=$1 name=$2 i
  [[ -n $pid ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}

FSYNC_COUNT=200
dsync_ms() {
  local out secs
  out=$(LC_ALL=C timeout 120 dd if=/dev/zero of="$1" bs=4k count="$FSYNC_COUNT" oflag=dsync ${2:+conv=$2} 2>&1 >/dev/null) || { echo "?"; return; }
  secs=$(sed -n 's/.* copied, \([0-9.e+-]*\) s,.*/\1/p' <<<"$out")
  [[ -n $secs ]] || { echo "?"; return; }
  awk -v s="$secs" -v n="$FSYNC_COUNT" 'BEGIN { printf "%.3f", s * 1000 / n }'
}

need_debs() {
  local pc missing=()
  for pc in "$@"; do
    if ! dpkg -s "${pc%%:*}" >/dev/null 2>&1; then
      missing+=("${pc%%:*}")
    elif [[ $pc == *:* ]] && ! command -v "${pc#*:}" >/dev/null 2>&1; then
      missing+=("${pc%%:*}")
    fi
  done
  install_debs "${missing[@]}"
}

ratio() {
  awk -v s="$1" -v p="$2" 'BEGIN { n = "^[0-9]+([.][0-9]*)?([eE][-+]?[0-9]+)?$"
    if (s !~ n || p !~ n || p + 0 == 0) print "—"; else printf "%.2f", s / p }'
}
per_sec() { awk -v ms="$1" 'BEGIN { if (ms + 0 == 0) print "—"; else printf "%.0f", 1000 / ms }'; }

out_field() { sed -n "s/^$1/\\1/p" "$2" | head -n1; }

pcts() {
  awk -v ps="$1" '
    { v[NR] = $1; c[NR] = $2; n += $2 }
    END {
      k = split(ps, p, " ")
      for (j = 1; j <= k; j++) {
        s = 0; out = ""
        for (i = 1; i <= NR && n > 0; i++) { s += c[i]; if (s >= n * p[j] / 100) { out = v[i]; break } }
        printf "%s%s", out, (j < k ? " " : "\n")
      }
    }'
}

# /proc/PID/stat: "pid (comm) state ppid …"; after the closing parenthesis,
# field 2 is the parent, 12–15 utime, stime, cutime, cstime. A process that
# exits between the two snapshots moves from "live child" into its parent's
# cutime/cstime once reaped, so nothing is lost or counted twice.
proc_cpu_ticks() {
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v p="$1" '
    { pid = $1; sub(/^.*\) /, "")
      if (pid == p) t += $12 + $13 + $14 + $15
      else if ($2 == p) t += $12 + $13 }
    END { print t + 0 }'
}

FSYNC_EVENTS=syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync
PERF_OK=0
PERF_NOTE=""
perf_check() {
  local out
  if ! command -v perf >/dev/null 2>&1; then
    PERF_NOTE="perf is not installed"
  elif ! out=$(timeout 30 perf stat -a -x, -e "$FSYNC_EVENTS" -o /dev/null -- true 2>&1); then
    PERF_NOTE="perf cannot count $FSYNC_EVENTS here: $(head -n 2 <<<"$out" | tr '\n' ' ')"
  else
    PERF_OK=1
  fi
  (( PERF_OK )) || log "no fsync counts: $PERF_NOTE"
}

fsync_counted() {
  local file=$1; shift
  rm -f "$file"
  if (( PERF_OK )); then
    # perf ends when CMD does (CMD carries its own timeout); the outer bound
    # is for perf itself.
    timeout --kill-after=10 7200 perf stat -a -x, -e "$FSYNC_EVENTS" -o "$file" -- "$@"
  else
    "$@"
  fi
}

fsyncs_in() { [[ -f $1 ]] && awk -F, '$1 ~ /^[0-9]+$/ { n += $1; ok = 1 } END { if (ok) print n }' "$1"; }

fsync_floor() {
  log "measuring fdatasync latency"
  FSYNC_APPEND_MS=$(dsync_ms "$1/fsync-probe")
  FSYNC_OVERWRITE_MS=$(dsync_ms "$1/fsync-probe" notrunc)
  rm -f "$1/fsync-probe"
}

# The physical floor of a durable commit: 4 KiB O_DSYNC writes (each one a
# write + fdatasync). Appending to a new file also syncs the file's growing
# size, like an appended WAL (RocksDB); overwriting does not, like
# PostgreSQL's preallocated WAL segments.
fsync_floor_md() {
  echo "## Durable-commit floor"
  echo
  echo "| 4 KiB write + fdatasync (O_DSYNC, $FSYNC_COUNT writes) | ms per write | max commits/s, one committer, no group commit |"
  echo "|---|---:|---:|"
  echo "| appending to a new file | $FSYNC_APPEND_MS | $(per_sec "$FSYNC_APPEND_MS") |"
  echo "| overwriting in place | $FSYNC_OVERWRITE_MS | $(per_sec "$FSYNC_OVERWRITE_MS") |"
}
