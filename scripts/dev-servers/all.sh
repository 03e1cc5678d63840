#!/usr/bin/env bash
# All test servers at once: sftp, ftp, vsftpd, swift, and the databases of the shared store,
# postgres and mariadb (see each script's header).
#
#   bash scripts/dev-servers/all.sh start          install every missing Debian package in one
#                                              apt-get run (plus rclone, the independent client
#                                              the tests read destinations back with), then
#                                              start the servers in parallel (vsftpd unpacks
#                                              its own package); prints
#                                              {"sftp": info, "ftp": info, "vsftpd": info,
#                                               "swift": info, "postgres": info,
#                                               "mariadb": info}
#   bash scripts/dev-servers/all.sh stop [--clean] stop them all (--clean: delete their state)
#   bash scripts/dev-servers/all.sh status         exit 0 only when all are healthy
#
# Exit status is non-zero when any server fails; its stderr (with log tails) is shown.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$HERE/common.sh"
FC_NAME=all
NAMES=(sftp ftp vsftpd swift postgres mariadb)
PACKAGES=(
  openssh-server openssh-client passwd
  proftpd-core proftpd-mod-crypto openssl socat curl
  swift swift-proxy swift-object swift-container swift-account memcached python3
  postgresql mariadb-server mariadb-client
  rclone
)

# run_all COMMAND [ARG] — runs "<name>.sh COMMAND [ARG]" for every server in parallel;
# collects stdout in $tmp/<name>.out and stderr in $tmp/<name>.err. Returns the number of
# failures.
function run_all() {
  local name failures=0
  declare -A pids=()
  for name in "${NAMES[@]}"; do
    bash "$HERE/$name.sh" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    pids[$name]=$!
  done
  for name in "${NAMES[@]}"; do
    if ! wait "${pids[$name]}"; then
      failures=$((failures + 1))
      printf -- '----- %s %s failed -----\n' "$name" "$1" >&2
    fi
    cat "$tmp/$name.err" >&2
  done
  return "$failures"
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$FC_BASE_DIR"

case "${1:-}" in
  start)
    t0="$(fc_now_ms)"
    fc_ensure_packages "${PACKAGES[@]}"
    command -v rclone >/dev/null || fc_die "rclone is not on PATH after installing it"
    if ! run_all start; then
      fc_die "Not every server started (see above)"
    fi
    {
      printf '{\n'
      sep=""
      for name in "${NAMES[@]}"; do
        printf '%s"%s": ' "$sep" "$name"
        cat "$tmp/$name.out"
        sep=","
      done
      printf '}\n'
    }
    fc_log "All servers ready in $(($(fc_now_ms) - t0)) ms"
    ;;
  stop)
    run_all stop "${2:-}" || fc_die "Not every server stopped cleanly (see above)"
    ;;
  status)
    run_all status || exit 1
    ;;
  *)
    echo "usage: $0 start|stop [--clean]|status" >&2
    exit 2
    ;;
esac
