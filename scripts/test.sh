#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs and starts the real
# test servers (OpenSSH, ProFTPD, Swift with S3 API, PostgreSQL and MariaDB for
# the shared store; Debian packages, as root, their system services never started),
# runs every test, and stops the servers again.
#
#   deno task test            # everything
#   deno task test tests/e2e  # a subset (paths are passed to deno test)
set -euo pipefail
cd "$(dirname "$0")/.."

DENO="$(command -v deno || true)"
if [ -z "$DENO" ]; then
  npm install -g --silent deno@2.9.6 >/dev/null
  DENO="$(command -v deno)"
fi

# External tools the processors use where no embedded engine exists (jpegtran,
# gifsicle) and that the tests use to decode images (djpeg).
# Chromium drives the status page test; PHP with PDO SQLite is the web application
# that reads the synced files database in the web app test.
need=()
command -v jpegtran >/dev/null || need+=(libjpeg-turbo-progs)
command -v gifsicle >/dev/null || need+=(gifsicle)
command -v chromium >/dev/null || need+=(chromium)
command -v php >/dev/null || need+=(php-cli)
php -r 'exit(extension_loaded("pdo_sqlite") ? 0 : 1);' 2>/dev/null || need+=(php-sqlite3)
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

export FC_SERVERS_DIR="${FC_SERVERS_DIR:-/tmp/fileconveyor-servers}"
bash scripts/dev-servers/all.sh start >/dev/null
trap 'bash scripts/dev-servers/all.sh stop >/dev/null 2>&1 || true' EXIT

if [ "$#" -eq 0 ]; then set -- tests/; fi
"$DENO" test -A --parallel "$@"
