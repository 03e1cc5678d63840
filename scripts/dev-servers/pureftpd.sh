#!/usr/bin/env bash
# FTP test server with a connection limit: a private pure-ftpd on 127.0.0.1 that allows
# MAX_CLIENTS sessions at once and answers one more with
# "421 N users (the maximum) are already logged in, sorry" (as shared hosting does).
#
#   bash scripts/dev-servers/pureftpd.sh start           start (idempotent), print info.json
#   bash scripts/dev-servers/pureftpd.sh stop [--clean]  stop; --clean also deletes the state dir
#   bash scripts/dev-servers/pureftpd.sh status          exit 0 when running and healthy
#
# Debian's pure-ftpd conflicts with ProFTPD (the other FTP test server), so it is not installed:
# `apt-get download` fetches the package and `dpkg -x` unpacks it into the state dir (its
# libraries are already on a machine with openssl; libsodium23 and libcap2 are installed if
# missing). One virtual user in a PureDB built from a passwd-format file with an
# `openssl passwd -6` hash (pure-pw's default argon2 hash costs seconds per login), mapped to
# uid/gid 65534, chrooted to its home. No anonymous login, passive ports on loopback.
#
# State: ${FC_SERVERS_DIR:-/tmp/fileconveyor-servers}/pureftpd — pkg/ (unpacked package),
# pureftpd.passwd/.pdb, password, home/ (the FTP root), pure-ftpd.log, info.json.
#
# info.json: {"host","port","username","password","root","maxClients"}
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$HERE/common.sh"
fc_setup_state pureftpd

FTP_USER="fcpure"
FTP_UID=65534
FTP_GID=65534
MAX_CLIENTS=2
PASSIVE_COUNT=32
BIN="$FC_STATE/pkg/usr/sbin/pure-ftpd"

function fc_status() {
  fc_pid_of pure-ftpd >/dev/null || return 1
  local port
  port="$(cat "$FC_STATE/port" 2>/dev/null)" || return 1
  [[ "$(fc_banner "$port")" == 220* ]]
}

function fc_stop_processes() {
  fc_kill pure-ftpd
}

function fc_clean() {
  rm -rf "$FC_STATE"
}

# unpack — the pure-ftpd package, unpacked into the state dir (kept across restarts).
function unpack() {
  [[ -x "$BIN" && -x "$FC_STATE/pkg/usr/bin/pure-pw" ]] && return 0
  fc_ensure_packages libsodium23 libcap2 openssl curl
  local dl="$FC_STATE/download"
  rm -rf "$dl" "$FC_STATE/pkg"
  mkdir -p "$dl"
  # _apt cannot write into the state dir: download as root (apt warns, harmless).
  (cd "$dl" && apt-get download pure-ftpd) >"$FC_STATE/download.log" 2>&1 || {
    fc_apt_update >>"$FC_STATE/download.log" 2>&1 || true
    (cd "$dl" && apt-get download pure-ftpd) >>"$FC_STATE/download.log" 2>&1 ||
      { fc_show_logs "$FC_STATE/download.log"; fc_die "apt-get download pure-ftpd failed"; }
  }
  dpkg -x "$dl"/pure-ftpd_*.deb "$FC_STATE/pkg"
  rm -rf "$dl"
  [[ -x "$BIN" ]] || fc_die "$BIN missing after unpacking"
}

function fc_start() {
  unpack
  local home="$FC_STATE/home"
  mkdir -p "$home"
  chown "$FTP_UID:$FTP_GID" "$home"
  chmod 755 "$home"
  if [[ ! -s "$FC_STATE/password" ]]; then
    fc_random_hex 12 >"$FC_STATE/password"
    chmod 600 "$FC_STATE/password"
  fi
  local password
  password="$(cat "$FC_STATE/password")"
  (
    umask 077
    # account:password:uid:gid:gecos:home (/./ = chroot):… (12 more empty fields)
    printf '%s:%s:%s:%s::%s/./::::::::::::\n' "$FTP_USER" "$(openssl passwd -6 "$password")" \
      "$FTP_UID" "$FTP_GID" "$home" >"$FC_STATE/pureftpd.passwd"
  )
  rm -f "$FC_STATE/pureftpd.pdb"
  "$FC_STATE/pkg/usr/bin/pure-pw" mkdb "$FC_STATE/pureftpd.pdb" -f "$FC_STATE/pureftpd.passwd"

  local attempt port pasv
  for attempt in 1 2 3; do
    port="$(fc_pick_ports 1)"
    read -r -a pasv <<<"$(fc_pick_ports "$PASSIVE_COUNT" 1)"
    echo "$port" >"$FC_STATE/port"
    : >"$FC_STATE/pure-ftpd.log"
    # -S bind, -l auth, -c most sessions, -C per address (not the limit under test), -E no
    # anonymous, -A chroot everyone, -H no DNS, -p passive range, -P passive address.
    fc_spawn pure-ftpd "$FC_STATE/pure-ftpd.log" "$BIN" -S "127.0.0.1,$port" \
      -l "puredb:$FC_STATE/pureftpd.pdb" -c "$MAX_CLIENTS" -C 50 -E -A -H \
      -p "${pasv[0]}:${pasv[-1]}" -P 127.0.0.1
    if fc_wait_until 10 "pure-ftpd answering on 127.0.0.1:$port" fc_status; then
      break
    fi
    fc_stop_processes
    if [[ $attempt -lt 3 ]]; then
      fc_log "pure-ftpd did not start, retrying with other ports"
      continue
    fi
    fc_show_logs "$FC_STATE/pure-ftpd.log"
    fc_die "pure-ftpd did not become ready"
  done

  curl -sS --max-time 5 --user "$FTP_USER:$password" "ftp://127.0.0.1:$port/" \
    >"$FC_STATE/readiness.log" 2>&1 ||
    {
      fc_show_logs "$FC_STATE/readiness.log" "$FC_STATE/pure-ftpd.log"
      fc_stop_processes
      fc_die "pure-ftpd is up but a login + listing with curl failed"
    }

  cat >"$FC_STATE/info.json.tmp" <<EOF
{
  "host": "127.0.0.1",
  "port": $port,
  "username": $(fc_json_str "$FTP_USER"),
  "password": $(fc_json_str "$password"),
  "root": $(fc_json_str "$home"),
  "maxClients": $MAX_CLIENTS
}
EOF
  mv "$FC_STATE/info.json.tmp" "$FC_STATE/info.json"
}

fc_main "$@"
