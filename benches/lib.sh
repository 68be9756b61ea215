# benches/lib.sh — helpers shared by the benchmark scripts (sourced).
#
#   log / die            messages on stderr, prefixed [bench]
#   install_debs PKG...  apt-get install the packages (root or sudo), bounded
#   find_shoal_bin       SHOAL_BIN, else the release build, else the debug one
#   pick_port VAR        a free, not yet handed out, loopback port
#   stop_pid PID NAME    SIGTERM, wait up to 10 s, then SIGKILL — that pid only
#   wait_port PORT       until something listens on 127.0.0.1:PORT (60 s)
#   dsync_ms FILE [conv] average ms of a 4 KiB O_DSYNC write (write + fdatasync)
#   smoke_flag SCRIPT ARGS...  sets SMOKE from --smoke; --help prints the
#                        script's header comment; anything else is an error

log() { printf '[bench] %s\n' "$*" >&2; }

smoke_flag() {
  local script=$1 arg; shift
  SMOKE=0
  for arg in "$@"; do
    case $arg in
      --smoke) SMOKE=1 ;;
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

TAKEN_PORTS=" "
pick_port() {
  local p _
  for _ in $(seq 200); do
    p=$(( 20000 + RANDOM % 40000 ))
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
