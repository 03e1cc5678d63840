# shellcheck shell=bash
# Shared helpers for the test-server scripts (sftp.sh, ftp.sh, swift.sh, all.sh).
#
# Source it, do not run it. Conventions every script follows:
# - State lives in "${FC_SERVERS_DIR:-/tmp/fileconveyor-servers}/<name>"; logs, pid files,
#   generated credentials and info.json all go there.
# - Progress and errors go to stderr; `start` prints info.json (and nothing else) to stdout.
# - Daemons are started detached (own session, stdio redirected to log files) so that a
#   caller waiting for this script's stdout (Deno.Command.output()) is not kept waiting.
# - A per-server lock serialises concurrent start/stop calls (parallel test files), and a
#   machine-wide lock serialises apt-get.

FC_BASE_DIR="${FC_SERVERS_DIR:-/tmp/fileconveyor-servers}"
case "$FC_BASE_DIR" in
  /*) ;;
  *) FC_BASE_DIR="$(pwd)/$FC_BASE_DIR" ;;
esac
FC_APT_LOCK="/tmp/fileconveyor-apt.lock"

# fc_log MESSAGE... — progress line on stderr, prefixed with the server name.
function fc_log() {
  printf '[%s] %s\n' "${FC_NAME:-servers}" "$*" >&2
}

# fc_die MESSAGE... — error on stderr, exit 1.
function fc_die() {
  printf '[%s] error: %s\n' "${FC_NAME:-servers}" "$*" >&2
  exit 1
}

# fc_now_ms — milliseconds since the epoch.
function fc_now_ms() {
  local t
  t="$(date +%s%N)"
  printf '%s\n' "$((t / 1000000))"
}

# fc_random_hex BYTES — random lowercase hex string (no openssl needed).
function fc_random_hex() {
  od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}

# fc_json_str VALUE — VALUE as a JSON string literal.
function fc_json_str() {
  local s="$1"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  s="${s//$'\n'/\\n}"
  s="${s//$'\t'/\\t}"
  printf '"%s"' "$s"
}

# fc_setup_state NAME — sets FC_NAME and FC_STATE and creates the state directory.
function fc_setup_state() {
  FC_NAME="$1"
  FC_STATE="$FC_BASE_DIR/$1"
  # Only directories created here get their mode set (FC_SERVERS_DIR may be /tmp itself).
  if [[ ! -d "$FC_BASE_DIR" ]]; then
    mkdir -p "$FC_BASE_DIR"
    chmod 755 "$FC_BASE_DIR"
  fi
  mkdir -p "$FC_STATE"
  chmod 755 "$FC_STATE"
}

# fc_lock_state — holds an exclusive lock on the state dir until the script exits.
# A server process that inherited the lock's descriptor (started by an older version of
# these scripts) would hold it forever: such processes are stopped.
function fc_lock_state() {
  exec {FC_STATE_LOCK_FD}>"$FC_STATE/.lock"
  flock -w 3 "$FC_STATE_LOCK_FD" && return 0
  local lock f pid p fd holders=()
  lock="$(readlink -f "$FC_STATE/.lock")"
  for f in "$FC_STATE"/*.pid; do
    [[ -f "$f" ]] || continue
    pid="$(fc_pid_of "$(basename "$f" .pid)")" || continue
    for p in "$pid" $(fc_descendants "$pid"); do
      for fd in /proc/"$p"/fd/*; do
        if [[ "$(readlink "$fd" 2>/dev/null)" == "$lock" ]]; then
          holders+=("$p")
          break
        fi
      done
    done
  done
  if [[ ${#holders[@]} -gt 0 ]]; then
    fc_log "Server processes ${holders[*]} hold $lock (started by an older script): stopping them"
    fc_stop_processes
  fi
  if ! flock -w 600 "$FC_STATE_LOCK_FD"; then
    fc_die "Cannot lock \"$FC_STATE/.lock\" within 600 s (another start/stop is stuck?)"
  fi
}

# ---------------------------------------------------------------------------------------------
# Packages

# fc_missing_packages PKG... — prints the packages that are not installed.
function fc_missing_packages() {
  local pkg name status
  declare -A installed=()
  while read -r name status; do
    [[ "$status" == installed ]] && installed[${name%%:*}]=1
  done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "$@" 2>/dev/null || true)
  for pkg in "$@"; do
    [[ -n "${installed[$pkg]:-}" ]] || printf '%s\n' "$pkg"
  done
}

# fc_apt_install_now PKG... — one apt-get install attempt, never starting services.
function fc_apt_install_now() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    -o DPkg::Lock::Timeout=600 \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "$@"
}

# fc_apt_update — apt-get update, waiting for other apt users.
function fc_apt_update() {
  DEBIAN_FRONTEND=noninteractive apt-get update -o DPkg::Lock::Timeout=600
}

# fc_ensure_packages PKG... — installs the missing Debian packages (fast no-op when present).
# Packaged services must not start: a temporary /usr/sbin/policy-rc.d (exit 101) blocks
# invoke-rc.d/deb-systemd-invoke while apt runs, unless one is already in place. Our servers
# use their own random high ports, so a system service started anyway would not conflict.
function fc_ensure_packages() {
  local missing
  missing="$(fc_missing_packages "$@")"
  [[ -z "$missing" ]] && return 0
  if [[ "$(id -u)" != 0 ]]; then
    fc_die "Missing Debian packages ($(echo "$missing" | tr '\n' ' ')) and not root: install them first"
  fi
  local lock_fd
  exec {lock_fd}>"$FC_APT_LOCK"
  flock -w 1200 "$lock_fd" || fc_die "Cannot lock $FC_APT_LOCK within 1200 s"
  # Another script may have installed them while we waited.
  # shellcheck disable=SC2207
  local pkgs=($(fc_missing_packages "$@"))
  if [[ ${#pkgs[@]} -eq 0 ]]; then
    exec {lock_fd}>&-
    return 0
  fi
  fc_log "Installing Debian packages: ${pkgs[*]}"
  local own_policy=0 log="$FC_BASE_DIR/apt-$$.log" rc=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# Temporary, written by fileconveyor scripts/dev-servers: no service starts.\nexit 101\n' \
      >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  mkdir -p "$FC_BASE_DIR"
  {
    # Update first when a package has no candidate (never updated, or the lists are stale).
    local need_update=0 pkg
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
      need_update=1
    else
      local candidate
      for pkg in "${pkgs[@]}"; do
        candidate="$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')"
        if [[ -z "$candidate" || "$candidate" == "(none)" ]]; then
          need_update=1
        fi
      done
    fi
    if [[ $need_update == 1 ]]; then
      fc_apt_update || true
    fi
    if ! fc_apt_install_now "${pkgs[@]}"; then
      if [[ $need_update == 0 ]]; then
        # Stale lists give 404s on superseded versions: update once and retry.
        fc_apt_update || true
        fc_apt_install_now "${pkgs[@]}" || rc=$?
      else
        rc=1
      fi
    fi
  } >"$log" 2>&1 || rc=$?
  if [[ $own_policy == 1 ]]; then
    rm -f /usr/sbin/policy-rc.d
  fi
  exec {lock_fd}>&-
  if [[ $rc != 0 ]]; then
    tail -n 30 "$log" >&2
    fc_die "apt-get install ${pkgs[*]} failed (full log: $log)"
  fi
  rm -f "$log"
  fc_log "Installed: ${pkgs[*]}"
}

# ---------------------------------------------------------------------------------------------
# Ports

# fc_port_range — "LOW HIGH" for our listeners: below the kernel's ephemeral range, so an
# outgoing connection never holds the port we are about to bind.
function fc_port_range() {
  local low high
  read -r low high </proc/sys/net/ipv4/ip_local_port_range || true
  if [[ -n "${low:-}" && "$low" -gt 21000 ]]; then
    printf '%s %s\n' 20000 "$((low - 1))"
  else
    printf '%s %s\n' "$((high + 1 > 61000 ? high + 1 : 61000))" 65000
  fi
}

# fc_used_ports — every local TCP port the kernel knows of (any state), one per line.
function fc_used_ports() {
  # One awk pass: a bash `read` loop on /proc/net/tcp seeks back after every line, and each
  # seek regenerates the whole file (seconds on a busy machine).
  awk 'function hex(s,  i, n) {
         n = 0
         for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789ABCDEF", toupper(substr(s, i, 1))) - 1
         return n
       }
       FNR > 1 { k = split($2, a, ":"); print hex(a[k]) }' /proc/net/tcp /proc/net/tcp6 2>/dev/null || true
}

# fc_pick_ports COUNT [CONTIGUOUS] — prints COUNT free ports separated by spaces. With
# CONTIGUOUS=1 they form one block (for a passive port range). Ports handed out in the last
# 120 s by any of our scripts (any FC_SERVERS_DIR) are skipped, so parallel starts do not
# pick the same one. Run it in a command substitution and check its status.
function fc_pick_ports() {
  local count="$1" contiguous="${2:-0}"
  local reserved=/tmp/fileconveyor-ports.reserved lock_fd
  exec {lock_fd}>/tmp/fileconveyor-ports.lock
  flock -w 30 "$lock_fd" || fc_die "Cannot lock /tmp/fileconveyor-ports.lock"
  local now low high
  now="$(date +%s)"
  read -r low high < <(fc_port_range)
  declare -A used=()
  local p t
  while read -r p; do used[$p]=1; done < <(fc_used_ports)
  if [[ -f "$reserved" ]]; then
    local keep=""
    while read -r p t; do
      if [[ -n "$p" && $((now - t)) -lt 120 ]]; then
        used[$p]=1
        keep+="$p $t"$'\n'
      fi
    done <"$reserved"
    printf '%s' "$keep" >"$reserved"
  fi
  local picked=() tries=0 base i ok
  while [[ ${#picked[@]} -lt $count ]]; do
    tries=$((tries + 1))
    [[ $tries -gt 2000 ]] && fc_die "Cannot find $count free port(s) in $low-$high"
    if [[ $contiguous == 1 ]]; then
      base=$((low + (RANDOM * 32768 + RANDOM) % (high - low - count)))
      ok=1
      for ((i = 0; i < count; i++)); do
        [[ -n "${used[$((base + i))]:-}" ]] && ok=0 && break
      done
      if [[ $ok == 1 ]]; then
        for ((i = 0; i < count; i++)); do picked+=("$((base + i))"); done
      fi
    else
      p=$((low + (RANDOM * 32768 + RANDOM) % (high - low)))
      if [[ -z "${used[$p]:-}" ]]; then
        picked+=("$p")
        used[$p]=1
      fi
    fi
  done
  for p in "${picked[@]}"; do printf '%s %s\n' "$p" "$now" >>"$reserved"; done
  exec {lock_fd}>&-
  echo "${picked[*]}"
}

# fc_tcp_open PORT — true when something accepts TCP connections on 127.0.0.1:PORT.
function fc_tcp_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# fc_banner PORT — first line the server sends on 127.0.0.1:PORT (2 s timeout).
function fc_banner() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; IFS= read -r line <&3; printf '%s\n' \"\$line\"" \
    2>/dev/null | tr -d '\r'
}

# fc_wait_until TIMEOUT_S DESCRIPTION COMMAND... — polls COMMAND every 0.1 s until it succeeds.
function fc_wait_until() {
  local timeout_s="$1" what="$2"
  shift 2
  local deadline=$(($(fc_now_ms) + timeout_s * 1000))
  while ! "$@" >/dev/null 2>&1; do
    if [[ $(fc_now_ms) -gt $deadline ]]; then
      fc_log "Timed out after ${timeout_s}s waiting for: $what"
      return 1
    fi
    sleep 0.1
  done
}

# ---------------------------------------------------------------------------------------------
# Certificates

# fc_make_cert ORGANIZATION — self-signed server certificate for IP:127.0.0.1 and
# DNS:localhost in $FC_STATE/cert.pem and key.pem (kept across restarts). CA:FALSE:
# rustls, hence Deno, refuses a CA certificate as a server certificate.
function fc_make_cert() {
  [[ -s "$FC_STATE/cert.pem" && -s "$FC_STATE/key.pem" ]] && return 0
  cat >"$FC_STATE/openssl.cnf" <<EOF
[req]
distinguished_name = dn
x509_extensions = leaf
prompt = no
[dn]
CN = 127.0.0.1
O = $1
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
EOF
  openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
    -config "$FC_STATE/openssl.cnf" -keyout "$FC_STATE/key.pem.tmp" \
    -out "$FC_STATE/cert.pem.tmp" 2>"$FC_STATE/openssl.log" ||
    { fc_show_logs "$FC_STATE/openssl.log"; fc_die "openssl could not create the certificate"; }
  chmod 600 "$FC_STATE/key.pem.tmp"
  chmod 644 "$FC_STATE/cert.pem.tmp"
  mv "$FC_STATE/key.pem.tmp" "$FC_STATE/key.pem"
  mv "$FC_STATE/cert.pem.tmp" "$FC_STATE/cert.pem"
}

# ---------------------------------------------------------------------------------------------
# Processes

# fc_spawn NAME LOGFILE COMMAND... — starts COMMAND detached (new session, stdin from
# /dev/null, stdout+stderr to LOGFILE) and records its pid in $FC_STATE/NAME.pid.
function fc_spawn() {
  local name="$1" log="$2"
  shift 2
  # Without job control the background child is not a process-group leader, so setsid
  # does not fork again and $! is the daemon's own pid. The state lock's descriptor must not
  # be inherited: a daemon holding it would block every later start/stop.
  if [[ -n "${FC_STATE_LOCK_FD:-}" ]]; then
    setsid "$@" </dev/null >>"$log" 2>&1 {FC_STATE_LOCK_FD}>&- &
  else
    setsid "$@" </dev/null >>"$log" 2>&1 &
  fi
  local pid=$!
  # The start time guards against a recycled pid (after a reboot, say) being killed later.
  echo "$pid $(fc_proc_starttime "$pid")" >"$FC_STATE/$name.pid"
}

# fc_proc_starttime PID — the process's start time in clock ticks since boot (empty if gone).
function fc_proc_starttime() {
  local stat
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 0
  stat="${stat##*) }"
  # shellcheck disable=SC2206
  local fields=($stat)
  printf '%s\n' "${fields[19]}"
}

# fc_pid_of NAME — pid recorded for NAME, if that process is alive.
function fc_pid_of() {
  local f="$FC_STATE/$1.pid" pid started
  [[ -f "$f" ]] || return 1
  read -r pid started <"$f" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  [[ -z "$started" || "$(fc_proc_starttime "$pid")" == "$started" ]] || return 1
  # A zombie or a recycled pid in another session does not count.
  local stat
  stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat:0:1}" != "Z" ]] || return 1
  printf '%s\n' "$pid"
}

# fc_descendants PID — all descendant pids of PID (children first level first).
function fc_descendants() {
  local root="$1" f stat pid ppid
  declare -A parent=()
  for f in /proc/[0-9]*/stat; do
    { read -r stat <"$f"; } 2>/dev/null || continue
    pid="${f#/proc/}"
    pid="${pid%/stat}"
    stat="${stat##*) }"
    read -r _ ppid _ <<<"$stat"
    parent[$pid]="$ppid"
  done
  local queue=("$root") i=0 p c
  while [[ $i -lt ${#queue[@]} ]]; do
    p="${queue[$i]}"
    i=$((i + 1))
    for c in "${!parent[@]}"; do
      if [[ "${parent[$c]}" == "$p" ]]; then
        queue+=("$c")
        printf '%s\n' "$c"
      fi
    done
  done
}

# fc_kill NAME — stops the process recorded for NAME and everything it forked, then removes
# the pid file. TERM first, KILL after 5 s.
function fc_kill() {
  local name="$1" pid pids
  if pid="$(fc_pid_of "$name")"; then
    # shellcheck disable=SC2207
    pids=("$pid" $(fc_descendants "$pid"))
    kill -TERM "${pids[@]}" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do
      local alive=0 p
      for p in "${pids[@]}"; do
        if kill -0 "$p" 2>/dev/null && [[ "$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)" != Z ]]; then
          alive=1
        fi
      done
      [[ $alive == 0 ]] && break
      sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
  fi
  rm -f "$FC_STATE/$name.pid"
}

# fc_show_logs FILE... — last lines of each log on stderr (used when a start fails).
function fc_show_logs() {
  local f
  for f in "$@"; do
    [[ -s "$f" ]] || continue
    printf -- '----- last lines of %s -----\n' "$f" >&2
    tail -n 25 "$f" >&2
  done
}

# fc_print_info — prints $FC_STATE/info.json to stdout.
function fc_print_info() {
  cat "$FC_STATE/info.json"
}

# fc_main "$@" — dispatches start|stop [--clean]|status to fc_start/fc_stop/fc_status,
# which each server script defines. start and stop hold the state lock.
function fc_main() {
  local cmd="${1:-}"
  case "$cmd" in
    start)
      fc_lock_state
      if fc_status >/dev/null 2>&1 && [[ -f "$FC_STATE/info.json" ]]; then
        fc_log "Already running"
        fc_print_info
        return 0
      fi
      # Leftovers of a crashed or half-started run.
      fc_stop_processes >/dev/null 2>&1 || true
      rm -f "$FC_STATE/info.json"
      local t0
      t0="$(fc_now_ms)"
      fc_start
      fc_log "Started in $(($(fc_now_ms) - t0)) ms"
      fc_print_info
      ;;
    stop)
      fc_lock_state
      fc_stop_processes
      rm -f "$FC_STATE/info.json"
      if [[ "${2:-}" == "--clean" ]]; then
        fc_clean
        fc_log "Stopped and removed $FC_STATE"
      else
        fc_log "Stopped"
      fi
      ;;
    status)
      if [[ -f "$FC_STATE/info.json" ]] && fc_status; then
        fc_log "Running and healthy"
        return 0
      fi
      fc_log "Not running (or not healthy)"
      return 1
      ;;
    *)
      echo "usage: $0 start|stop [--clean]|status" >&2
      return 2
      ;;
  esac
}
