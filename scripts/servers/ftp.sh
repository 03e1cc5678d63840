#!/usr/bin/env bash
# FTP / FTPS test server: a private ProFTPD with mod_tls on 127.0.0.1 (Debian packages
# proftpd-core, proftpd-mod-crypto, openssl, socat; curl for the readiness check).
#
#   bash scripts/servers/ftp.sh start           start (idempotent), print info.json
#   bash scripts/servers/ftp.sh stop [--clean]  stop; --clean also deletes the state dir
#                                               (certificate, credentials, uploaded files)
#   bash scripts/servers/ftp.sh status          exit 0 when running and healthy
#
# ProFTPD runs in inetd mode behind three socat listeners (`fork`, `EXEC:...,nofork`: one
# proftpd per connection with the TCP socket as stdin/stdout). Standalone mode is not used on
# purpose: its master sleeps 0.2-0.4 s (compiled-in EINTR retry interval) after every session
# that ends, so each new connection shortly after another one waited that long (measured
# 300-400 ms per connection vs ~25 ms here). One config, three listeners (virtual hosts
# chosen by port) sharing one user, home and passive port range:
#   port         plain FTP and explicit FTPS (AUTH TLS) with `TLSOptions NoSessionReuseRequired`,
#                the setting Deno clients need (Deno's TLS cannot resume the control
#                connection's session on data connections).
#   reusePort    explicit FTPS only (TLSRequired on), ProFTPD's default of requiring TLS
#                session reuse on data connections. Clients that cannot resume the session
#                (npm:basic-ftp under Deno, Python's ftplib) get "425 Unable to build data
#                connection: Operation not permitted" on every transfer (tls.log: "client did
#                not reuse TLS session"); curl and rclone work. Exists so that the limitation
#                can be tested.
#   implicitPort implicit FTPS (`TLSOptions UseImplicitSSL`, TLS from the first byte),
#                with NoSessionReuseRequired.
# Login: a virtual user from an AuthUserFile (`openssl passwd -6` hash; no PAM, no system
# user) mapped to uid/gid 65534, chrooted to its home (DefaultRoot ~), which is writable.
# AllowOverwrite on (STOR and RNFR/RNTO replace existing files), MLSD/MFMT via mod_facts,
# ListOptions -a (dot files listed), no delay after failed logins (DelayEngine off).
# Certificate: self-signed for IP:127.0.0.1 and DNS:localhost, CA:FALSE (rustls, hence Deno,
# refuses a CA certificate as a server certificate); clients pin it with caPath.
#
# State: ${FC_SERVERS_DIR:-/tmp/fileconveyor-servers}/ftp — proftpd.conf, logs (proftpd.log,
# tls.log, xfer.log, commands.log, socat-*.log), cert.pem/key.pem and credentials (kept
# across restarts), home/ (the FTP root), info.json. Ports are new on every start. The state
# path must not contain characters socat treats specially (checked).
#
# info.json: {"host","port","reusePort","implicitPort","username","password","root",
#             "caPath","certFingerprint"}
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$HERE/common.sh"
fc_setup_state ftp

FTP_USER="fcftp"
FTP_UID=65534
FTP_GID=65534
PASSIVE_COUNT=64
LOG="$FC_STATE/proftpd.log"

function read_ports() {
  # "PORT REUSE IMPLICIT" from the running config.
  cat "$FC_STATE/ports" 2>/dev/null
}

LISTENERS=(plain reuse implicit)

function fc_status() {
  local l
  for l in "${LISTENERS[@]}"; do
    fc_pid_of "socat-$l" >/dev/null || return 1
  done
  local port reuse implicit
  read -r port reuse implicit < <(read_ports) || return 1
  [[ "$(fc_banner "$port")" == 220* ]] || return 1
  [[ "$(fc_banner "$reuse")" == 220* ]] || return 1
  fc_tcp_open "$implicit"
}

function fc_stop_processes() {
  local l
  for l in "${LISTENERS[@]}"; do
    fc_kill "socat-$l"
  done
}

function fc_clean() {
  rm -rf "$FC_STATE"
}

# make_cert — self-signed server certificate for 127.0.0.1 (kept across restarts).
function make_cert() {
  [[ -s "$FC_STATE/cert.pem" && -s "$FC_STATE/key.pem" ]] && return 0
  cat >"$FC_STATE/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
x509_extensions = leaf
prompt = no
[dn]
CN = 127.0.0.1
O = fileconveyor test FTP
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

# tls_block OPTIONS REQUIRED — the mod_tls settings of one listener.
function tls_block() {
  cat <<EOF
  TLSEngine on
  TLSLog $FC_STATE/tls.log
  TLSProtocol TLSv1.2 TLSv1.3
  TLSRSACertificateFile $FC_STATE/cert.pem
  TLSRSACertificateKeyFile $FC_STATE/key.pem
  TLSCACertificateFile $FC_STATE/cert.pem
  TLSVerifyClient off
  TLSRenegotiate none
  TLSRequired $2
EOF
  if [[ -n "$1" ]]; then
    printf '  TLSOptions %s\n' "$1"
  fi
}

# write_config PORT REUSE IMPLICIT PASV_LOW PASV_HIGH
function write_config() {
  cat >"$FC_STATE/proftpd.conf" <<EOF
# Generated by scripts/servers/ftp.sh — private test server, not the system proftpd.
ServerType inetd
ServerName "fileconveyor test FTP"
ServerIdent on "fileconveyor test FTP ready"
DefaultAddress 127.0.0.1
UseIPv6 off
Port $1
User nobody
Group nogroup
ScoreboardFile $FC_STATE/proftpd.scoreboard
SystemLog $FC_STATE/proftpd.log
TransferLog $FC_STATE/xfer.log
LogFormat commands "%t %a %u %m %J %s"
ExtendedLog $FC_STATE/commands.log ALL commands
WtmpLog off
UseReverseDNS off
DelayEngine off
ControlsEngine off
UseFtpUsers off
ModulePath /usr/lib/proftpd
LoadModule mod_tls.c

<Global>
  AuthOrder mod_auth_file.c
  AuthUserFile $FC_STATE/ftpd.passwd
  AuthGroupFile $FC_STATE/ftpd.group
  RequireValidShell off
  DefaultRoot ~
  AllowOverwrite on
  AllowStoreRestart on
  AllowRetrieveRestart on
  Umask 022 022
  PassivePorts $4 $5
  TimesGMT on
  ListOptions "-a"
  MaxLoginAttempts 20
  TimeoutIdle 600
  TimeoutNoTransfer 600
</Global>

<IfModule mod_tls.c>
$(tls_block NoSessionReuseRequired off)
</IfModule>

<VirtualHost 127.0.0.1>
  ServerName "fileconveyor test FTPS (session reuse required)"
  Port $2
  <IfModule mod_tls.c>
$(tls_block "" on)
  </IfModule>
</VirtualHost>

<VirtualHost 127.0.0.1>
  ServerName "fileconveyor test FTPS (implicit)"
  Port $3
  <IfModule mod_tls.c>
$(tls_block "UseImplicitSSL NoSessionReuseRequired" on)
  </IfModule>
</VirtualHost>
EOF
}

# curl_ftp PORT SCHEME OPTS... — list / through curl as the test user (readiness check).
function curl_ftp() {
  local port="$1" scheme="$2"
  shift 2
  curl -sS --max-time 5 --cacert "$FC_STATE/cert.pem" --user "$FTP_USER:$(cat "$FC_STATE/password")" \
    "$@" "$scheme://127.0.0.1:$port/"
}

function fc_start() {
  [[ "$FC_STATE" =~ ^[A-Za-z0-9_./+-]+$ ]] ||
    fc_die "State path \"$FC_STATE\" has characters socat cannot take; set FC_SERVERS_DIR"
  fc_ensure_packages proftpd-core proftpd-mod-crypto openssl socat curl
  [[ -x /usr/sbin/proftpd ]] || fc_die "/usr/sbin/proftpd missing after install"
  [[ -f /usr/lib/proftpd/mod_tls.so ]] || fc_die "mod_tls.so missing (package proftpd-mod-crypto)"

  local home="$FC_STATE/home"
  mkdir -p "$home"
  chown "$FTP_UID:$FTP_GID" "$home"
  chmod 755 "$home"
  make_cert

  if [[ ! -s "$FC_STATE/password" ]]; then
    fc_random_hex 12 >"$FC_STATE/password"
    chmod 600 "$FC_STATE/password"
  fi
  local password hash
  password="$(cat "$FC_STATE/password")"
  hash="$(openssl passwd -6 "$password")"
  # mod_auth_file rejects group/world-writable files.
  (
    umask 077
    printf '%s:%s:%s:%s::%s:/bin/false\n' "$FTP_USER" "$hash" "$FTP_UID" "$FTP_GID" "$home" \
      >"$FC_STATE/ftpd.passwd"
    printf '%s:x:%s:\n' "fcftp" "$FTP_GID" >"$FC_STATE/ftpd.group"
  )

  local attempt ports port reuse implicit pasv l ok
  for attempt in 1 2 3; do
    ports="$(fc_pick_ports 3)"
    read -r port reuse implicit <<<"$ports"
    ports="$(fc_pick_ports "$PASSIVE_COUNT" 1)"
    read -r -a pasv <<<"$ports"
    write_config "$port" "$reuse" "$implicit" "${pasv[0]}" "${pasv[-1]}"
    echo "$port $reuse $implicit" >"$FC_STATE/ports"
    : >"$LOG"
    /usr/sbin/proftpd -t -c "$FC_STATE/proftpd.conf" >"$FC_STATE/config-check.log" 2>&1 ||
      { fc_show_logs "$FC_STATE/config-check.log"; fc_die "proftpd rejected $FC_STATE/proftpd.conf"; }
    local -A listen_port=([plain]="$port" [reuse]="$reuse" [implicit]="$implicit")
    for l in "${LISTENERS[@]}"; do
      : >"$FC_STATE/socat-$l.log"
      fc_spawn "socat-$l" "$FC_STATE/socat-$l.log" socat -d \
        "TCP-LISTEN:${listen_port[$l]},bind=127.0.0.1,reuseaddr,fork,backlog=128" \
        "EXEC:/usr/sbin/proftpd -c $FC_STATE/proftpd.conf,nofork"
    done
    if fc_wait_until 15 "ProFTPD answering on 127.0.0.1:$port, $reuse, $implicit" fc_status; then
      break
    fi
    fc_stop_processes
    ok=1
    grep -qi "address already in use" "$FC_STATE"/socat-*.log && ok=0
    if [[ $ok == 0 && $attempt -lt 3 ]]; then
      fc_log "A port was taken, retrying with others"
      continue
    fi
    fc_show_logs "$FC_STATE"/socat-*.log "$LOG"
    fc_die "ProFTPD did not become ready"
  done

  # Real logins and directory listings on every listener, through an independent client
  # (in parallel: each TLS login costs ~0.2 s).
  local check="$FC_STATE/readiness" failed=0 pid
  rm -rf "$check"
  mkdir -p "$check"
  local -a pids=()
  curl_ftp "$port" ftp >"$check/plain.log" 2>&1 &
  pids+=($!)
  curl_ftp "$port" ftp --ssl-reqd >"$check/explicit.log" 2>&1 &
  pids+=($!)
  curl_ftp "$reuse" ftp --ssl-reqd >"$check/reuse.log" 2>&1 &
  pids+=($!)
  curl_ftp "$implicit" ftps >"$check/implicit.log" 2>&1 &
  pids+=($!)
  for pid in "${pids[@]}"; do
    wait "$pid" || failed=1
  done
  if [[ $failed != 0 ]]; then
    fc_show_logs "$check"/*.log "$LOG" "$FC_STATE/tls.log"
    fc_stop_processes
    fc_die "ProFTPD is up but a login + listing with curl failed"
  fi

  local fingerprint
  fingerprint="$(openssl x509 -noout -fingerprint -sha256 -in "$FC_STATE/cert.pem" | sed 's/^.*=//')"
  cat >"$FC_STATE/info.json.tmp" <<EOF
{
  "host": "127.0.0.1",
  "port": $port,
  "reusePort": $reuse,
  "implicitPort": $implicit,
  "username": $(fc_json_str "$FTP_USER"),
  "password": $(fc_json_str "$password"),
  "root": $(fc_json_str "$home"),
  "caPath": $(fc_json_str "$FC_STATE/cert.pem"),
  "certFingerprint": $(fc_json_str "$fingerprint")
}
EOF
  mv "$FC_STATE/info.json.tmp" "$FC_STATE/info.json"
}

fc_main "$@"
