#!/usr/bin/env bash
# PostgreSQL 15 test server for the shared store: a private cluster on 127.0.0.1 (Debian package
# postgresql; the packaged system service is never used).
#
#   bash scripts/dev-servers/postgres.sh start           start (idempotent), print info.json
#   bash scripts/dev-servers/postgres.sh stop [--clean]  stop (fast shutdown: clients are
#                                                    disconnected); --clean deletes the cluster
#   bash scripts/dev-servers/postgres.sh status          exit 0 when running and accepting logins
#   bash scripts/dev-servers/postgres.sh createdb NAME   create database NAME (owned by the test
#                                                    user) unless it exists; the server must run
#   bash scripts/dev-servers/postgres.sh dropdb NAME     drop database NAME (its clients are cut)
#
# State: ${FC_SERVERS_DIR:-/tmp/fileconveyor-servers}/postgres — data/ (the cluster, owned by the
# postgres user, kept across stop/start so a test can restart the server under its clients),
# sock/ (the Unix socket), postgres.log, password, cert.pem/key.pem, info.json.
#
# The port is fixed so that clients reconnect to the same URL after a restart: 15432 for the
# default state dir, another port below 20000 derived from the dir otherwise (FC_PG_PORT
# overrides). Ports below 20000 are outside both the range the other test servers pick from
# and the kernel's ephemeral range.
#
# Login: user "fc" with a random password (kept across restarts), scram-sha-256 over TCP; the
# Unix socket trusts local users (for this script's own admin commands). TLS is on with a
# self-signed certificate for 127.0.0.1 (caPath), so sslmode=verify-full can be tested.
# synchronous_commit=off: commits are not flushed one by one (like the SQLite store's
# synchronous=NORMAL), which keeps the tests fast on a shared machine.
#
# info.json: {"host","port","user","password","database","url","caPath"}
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$HERE/common.sh"
fc_setup_state postgres

PG_BIN=/usr/lib/postgresql/15/bin
PG_USER=fc
PG_DB=fileconveyor
DATA="$FC_STATE/data"
SOCK="$FC_STATE/sock"
LOG="$FC_STATE/postgres.log"
if [[ -n "${FC_PG_PORT:-}" ]]; then
  PORT="$FC_PG_PORT"
elif [[ "$FC_BASE_DIR" == /tmp/fileconveyor-servers ]]; then
  PORT=15432
else
  PORT=$((14000 + $(printf '%s' "$FC_BASE_DIR" | cksum | cut -d' ' -f1) % 1000))
fi

# as_postgres COMMAND... — runs COMMAND as the postgres system user.
function as_postgres() {
  runuser -u postgres -- "$@"
}

# psql_admin SQL — runs SQL as the test user over the Unix socket (trusted).
function psql_admin() {
  as_postgres "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U "$PG_USER" \
    -d postgres -tAc "$1"
}

function fc_status() {
  fc_pid_of postgres >/dev/null || return 1
  PGPASSWORD="$(cat "$FC_STATE/password" 2>/dev/null)" "$PG_BIN/psql" -X -h 127.0.0.1 \
    -p "$PORT" -U "$PG_USER" -d "$PG_DB" -tAc "SELECT 1" >/dev/null 2>&1
}

function fc_stop_processes() {
  if fc_pid_of postgres >/dev/null && [[ -f "$DATA/postmaster.pid" ]]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$DATA" -m fast -w -t 20 stop >>"$LOG" 2>&1 || true
  fi
  fc_kill postgres
}

function fc_clean() {
  rm -rf "$FC_STATE"
}

# ensure_cluster — creates the cluster once (initdb), with the test user and its password.
function ensure_cluster() {
  [[ -s "$FC_STATE/password" ]] || fc_random_hex 12 >"$FC_STATE/password"
  chmod 600 "$FC_STATE/password"
  fc_make_cert "fileconveyor test PostgreSQL"
  mkdir -p "$SOCK"
  chown postgres: "$SOCK"
  cp "$FC_STATE/key.pem" "$FC_STATE/server-key.pem"
  chown postgres: "$FC_STATE/server-key.pem"
  chmod 600 "$FC_STATE/server-key.pem"
  if [[ -s "$DATA/PG_VERSION" ]]; then
    return 0
  fi
  rm -rf "$DATA"
  mkdir -p "$DATA"
  chown postgres: "$DATA"
  chmod 700 "$DATA"
  local pwfile="$FC_STATE/pwfile"
  cp "$FC_STATE/password" "$pwfile"
  chown postgres: "$pwfile"
  if ! as_postgres test -w "$DATA"; then
    fc_die "The postgres user cannot reach $DATA: every parent directory must be searchable"
  fi
  as_postgres "$PG_BIN/initdb" -D "$DATA" -U "$PG_USER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
    >"$FC_STATE/initdb.log" 2>&1 || {
    rm -f "$pwfile"
    fc_show_logs "$FC_STATE/initdb.log"
    fc_die "initdb failed"
  }
  rm -f "$pwfile"
}

function fc_start() {
  fc_ensure_packages postgresql
  [[ "$(id -u)" == 0 ]] || fc_die "Must run as root (runs the cluster as the postgres user)"
  [[ -x "$PG_BIN/postgres" ]] || fc_die "$PG_BIN/postgres is missing (PostgreSQL 15 expected)"
  ensure_cluster
  rm -f "$DATA/postmaster.pid"
  : >"$LOG"
  chown postgres: "$LOG"
  fc_spawn postgres "$LOG" runuser -u postgres -- "$PG_BIN/postgres" -D "$DATA" \
    -c port="$PORT" -c listen_addresses=127.0.0.1 -c unix_socket_directories="$SOCK" \
    -c synchronous_commit=off -c max_connections=200 \
    -c ssl=on -c ssl_cert_file="$FC_STATE/cert.pem" -c ssl_key_file="$FC_STATE/server-key.pem"
  if ! fc_wait_until 30 "PostgreSQL on 127.0.0.1:$PORT" \
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
    fc_show_logs "$LOG"
    fc_stop_processes
    fc_die "PostgreSQL did not become ready on 127.0.0.1:$PORT"
  fi
  create_db "$PG_DB"
  fc_status || { fc_show_logs "$LOG"; fc_die "PostgreSQL is up but a login as $PG_USER failed"; }
  local password
  password="$(cat "$FC_STATE/password")"
  cat >"$FC_STATE/info.json.tmp" <<EOF
{
  "host": "127.0.0.1",
  "port": $PORT,
  "user": "$PG_USER",
  "password": $(fc_json_str "$password"),
  "database": "$PG_DB",
  "url": $(fc_json_str "postgres://$PG_USER:$password@127.0.0.1:$PORT/$PG_DB"),
  "caPath": $(fc_json_str "$FC_STATE/cert.pem")
}
EOF
  mv "$FC_STATE/info.json.tmp" "$FC_STATE/info.json"
}

# create_db NAME — creates database NAME unless it exists (safe when run twice at once).
function create_db() {
  [[ "$1" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || fc_die "Invalid database name \"$1\""
  if [[ -z "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = '$1'")" ]]; then
    psql_admin "CREATE DATABASE $1 OWNER $PG_USER" 2>"$FC_STATE/createdb.log" ||
      [[ -n "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = '$1'")" ]] ||
      { fc_show_logs "$FC_STATE/createdb.log"; fc_die "Cannot create database $1"; }
  fi
}

case "${1:-}" in
  createdb)
    [[ -n "${2:-}" ]] || fc_die "usage: $0 createdb NAME"
    create_db "$2"
    exit 0
    ;;
  dropdb)
    [[ "${2:-}" =~ ^[a-z_][a-z0-9_]{0,62}$ && "$2" != "$PG_DB" ]] ||
      fc_die "usage: $0 dropdb NAME (not $PG_DB)"
    psql_admin "DROP DATABASE IF EXISTS $2 WITH (FORCE)" || fc_die "Cannot drop database $2"
    exit 0
    ;;
esac
fc_main "$@"
