#!/usr/bin/env bash
# MariaDB 10.11 test server for the shared store: a private mariadbd on 127.0.0.1 (Debian package
# mariadb-server; the packaged system service is never used).
#
#   bash scripts/dev-servers/mariadb.sh start           start (idempotent), print info.json
#   bash scripts/dev-servers/mariadb.sh stop [--clean]  stop (clean shutdown); --clean deletes
#                                                   the data directory
#   bash scripts/dev-servers/mariadb.sh status          exit 0 when running and accepting logins
#   bash scripts/dev-servers/mariadb.sh createdb NAME   create database NAME unless it exists;
#                                                   the server must run
#   bash scripts/dev-servers/mariadb.sh dropdb NAME     drop database NAME
#
# State: ${FC_SERVERS_DIR:-/tmp/fileconveyor-servers}/mariadb — data/ (owned by the mysql user,
# kept across stop/start so a test can restart the server under its clients),
# run/mysqld.sock, mariadb.log, password, cert.pem/key.pem, info.json.
#
# The port is fixed so that clients reconnect to the same URL after a restart: 13306 for the
# default state dir, another port below 20000 derived from the dir otherwise (FC_MARIADB_PORT
# overrides); see postgres.sh for why below 20000.
#
# Login: user "fc"@"127.0.0.1" with a random password (kept across restarts) and every
# privilege (tests create their own databases). root logs in over the Unix socket only. TLS is
# on with a self-signed certificate for 127.0.0.1 (caPath).
# innodb_flush_log_at_trx_commit=2: the log is written at each commit but flushed once a
# second, which keeps the tests fast on a shared machine.
#
# info.json: {"host","port","user","password","database","url","caPath"}
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$HERE/common.sh"
fc_setup_state mariadb

DB_USER=fc
DB_NAME=fileconveyor
DATA="$FC_STATE/data"
RUN="$FC_STATE/run"
SOCK="$RUN/mysqld.sock"
LOG="$FC_STATE/mariadb.log"
if [[ -n "${FC_MARIADB_PORT:-}" ]]; then
  PORT="$FC_MARIADB_PORT"
elif [[ "$FC_BASE_DIR" == /tmp/fileconveyor-servers ]]; then
  PORT=13306
else
  PORT=$((16000 + $(printf '%s' "$FC_BASE_DIR" | cksum | cut -d' ' -f1) % 1000))
fi

# sql_root SQL — runs SQL as root over the Unix socket.
function sql_root() {
  mariadb --no-defaults -S "$SOCK" -uroot --batch --skip-column-names -e "$1"
}

function fc_status() {
  fc_pid_of mariadbd >/dev/null || return 1
  MYSQL_PWD="$(cat "$FC_STATE/password" 2>/dev/null)" mariadb --no-defaults -h 127.0.0.1 \
    -P "$PORT" -u "$DB_USER" "$DB_NAME" -e "SELECT 1" >/dev/null 2>&1
}

function fc_stop_processes() {
  local pid i
  if pid="$(fc_pid_of mariadbd)"; then
    # SIGTERM is mariadbd's clean shutdown; InnoDB may take a few seconds to flush.
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
      fc_pid_of mariadbd >/dev/null || break
      sleep 0.1
    done
  fi
  fc_kill mariadbd
}

function fc_clean() {
  rm -rf "$FC_STATE"
}

function ensure_datadir() {
  [[ -s "$FC_STATE/password" ]] || fc_random_hex 12 >"$FC_STATE/password"
  chmod 600 "$FC_STATE/password"
  fc_make_cert "fileconveyor test MariaDB"
  cp "$FC_STATE/key.pem" "$FC_STATE/server-key.pem"
  chown mysql: "$FC_STATE/server-key.pem"
  chmod 600 "$FC_STATE/server-key.pem"
  mkdir -p "$RUN"
  chown mysql: "$RUN"
  [[ -d "$DATA/mysql" ]] && return 0
  rm -rf "$DATA"
  mkdir -p "$DATA"
  chown mysql: "$DATA"
  chmod 750 "$DATA"
  mariadb-install-db --no-defaults --datadir="$DATA" --user=mysql \
    --auth-root-authentication-method=normal --skip-test-db >"$FC_STATE/install-db.log" 2>&1 || {
    fc_show_logs "$FC_STATE/install-db.log"
    rm -rf "$DATA"
    fc_die "mariadb-install-db failed"
  }
}

function fc_start() {
  fc_ensure_packages mariadb-server
  [[ "$(id -u)" == 0 ]] || fc_die "Must run as root (runs mariadbd as the mysql user)"
  ensure_datadir
  : >"$LOG"
  fc_spawn mariadbd "$LOG" mariadbd --no-defaults --datadir="$DATA" --socket="$SOCK" \
    --port="$PORT" --bind-address=127.0.0.1 --user=mysql --pid-file="$RUN/mariadbd.pid" \
    --skip-name-resolve --max-connections=300 --innodb-buffer-pool-size=64M \
    --innodb-flush-log-at-trx-commit=2 --innodb-log-file-size=32M \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_bin \
    --ssl-cert="$FC_STATE/cert.pem" --ssl-key="$FC_STATE/server-key.pem"
  local deadline=$(($(fc_now_ms) + 60000))
  until sql_root "SELECT 1" >/dev/null 2>&1; do
    if ! fc_pid_of mariadbd >/dev/null || [[ $(fc_now_ms) -gt $deadline ]]; then
      fc_show_logs "$LOG"
      fc_stop_processes
      fc_die "MariaDB did not become ready on 127.0.0.1:$PORT"
    fi
    sleep 0.1
  done
  local password
  password="$(cat "$FC_STATE/password")"
  sql_root "CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$password';
    ALTER USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$password';
    GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'127.0.0.1';
    CREATE DATABASE IF NOT EXISTS $DB_NAME;" 2>>"$LOG" ||
    { fc_show_logs "$LOG"; fc_die "Cannot create the test user and database"; }
  fc_status || { fc_show_logs "$LOG"; fc_die "MariaDB is up but a login as $DB_USER failed"; }
  cat >"$FC_STATE/info.json.tmp" <<EOF
{
  "host": "127.0.0.1",
  "port": $PORT,
  "user": "$DB_USER",
  "password": $(fc_json_str "$password"),
  "database": "$DB_NAME",
  "url": $(fc_json_str "mysql://$DB_USER:$password@127.0.0.1:$PORT/$DB_NAME"),
  "caPath": $(fc_json_str "$FC_STATE/cert.pem")
}
EOF
  mv "$FC_STATE/info.json.tmp" "$FC_STATE/info.json"
}

case "${1:-}" in
  createdb)
    [[ "${2:-}" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || fc_die "usage: $0 createdb NAME (a-z, 0-9, _)"
    sql_root "CREATE DATABASE IF NOT EXISTS $2" || fc_die "Cannot create database $2"
    exit 0
    ;;
  dropdb)
    [[ "${2:-}" =~ ^[a-z_][a-z0-9_]{0,62}$ && "$2" != "$DB_NAME" ]] ||
      fc_die "usage: $0 dropdb NAME (not $DB_NAME)"
    sql_root "DROP DATABASE IF EXISTS $2" || fc_die "Cannot drop database $2"
    exit 0
    ;;
esac
fc_main "$@"
