#!/usr/bin/env bash
# OpenStack Swift (and its S3 API) test server: Swift 2.30 all-in-one on 127.0.0.1 (Debian
# packages swift swift-proxy swift-object swift-container swift-account memcached curl
# python3).
#
#   bash scripts/dev-servers/swift.sh start          start (idempotent), print info.json
#   bash scripts/dev-servers/swift.sh stop [--clean]  stop; --clean also deletes the state dir and
#                                                 the stored objects
#   bash scripts/dev-servers/swift.sh status         exit 0 when running and healthy
#
# One node, one replica, one device. Five processes, each on its own free loopback port:
# memcached (private instance, tokens), account, container and object servers, and the proxy
# with the pipeline
#   catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth
#   copy slo dlo versioned_writes proxy-logging proxy-server
# so Swift v1 auth (tempauth, user test:tester), the Swift API and the S3 API (s3api,
# region us-east-1, path-style) share one port. Servers run with workers = 0 (no fork).
# Rings are rebuilt on every start (ports change) with swift.common.ring.RingBuilder in one
# python call; objects stay on the same device, so they survive a stop/start.
#
# Storage needs user xattrs with room for Swift's metadata (~4 KiB): /dev/shm is probed
# first (tmpfs has user xattrs since Linux 6.6), then the state dir; if neither takes 6 KiB
# of xattrs a warning is printed (large metadata will fail with 503).
#
# Config lives in the state dir (swift_dir there). Swift 2.30 still reads the hash
# prefix/suffix and storage policies from /etc/swift/swift.conf (the package's file; it is
# read, never written).
# Readiness: every /healthcheck answers OK, a tempauth login works, and a container PUT,
# object PUT, object GET, container listing and an S3 (SigV4) ListBuckets succeed; the
# check's container is deleted afterwards.
#
# State: ${FC_SERVERS_DIR:-/tmp/fileconveyor-servers}/swift — *.conf, rings, logs
# (<server>.log), the key (kept across restarts), data -> the device directory, info.json.
#
# info.json: {"authUrl","user","key","storageUrl","s3Endpoint","accessKeyId",
#             "secretAccessKey","region"}
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$HERE/common.sh"
fc_setup_state swift

# Debian's interpreter: the swift modules are in its dist-packages (a python3 earlier on
# PATH, e.g. from pyenv, does not see them).
PY=/usr/bin/python3
SERVERS=(account container object proxy)
ACCOUNT="test"
USER_NAME="tester"
REGION="us-east-1"
READY_TIMEOUT=60

function read_ports() {
  # "PROXY ACCOUNT CONTAINER OBJECT MEMCACHED"
  cat "$FC_STATE/ports" 2>/dev/null
}

function healthcheck() {
  [[ "$(curl -s --max-time 2 "http://127.0.0.1:$1/healthcheck")" == OK ]]
}

function fc_status() {
  local s
  for s in memcached "${SERVERS[@]}"; do
    fc_pid_of "$s" >/dev/null || return 1
  done
  local proxy account container object memcached
  read -r proxy account container object memcached < <(read_ports) || return 1
  for s in "$proxy" "$account" "$container" "$object"; do
    healthcheck "$s" || return 1
  done
  fc_tcp_open "$memcached"
}

function fc_stop_processes() {
  local s
  for s in proxy "${SERVERS[@]}" memcached; do
    fc_kill "$s"
  done
}

function fc_clean() {
  local data
  data="$(readlink "$FC_STATE/data" 2>/dev/null || true)"
  if [[ -n "$data" && "$data" == /dev/shm/fileconveyor-* ]]; then
    rm -rf "$data"
  fi
  rm -rf "$FC_STATE"
}

# xattr_ok DIR — true when DIR's file system takes Swift-sized user xattrs (24 x 254 bytes,
# the way Swift splits its metadata).
function xattr_ok() {
  "$PY" - "$1" <<'EOF' 2>/dev/null
import os, sys, tempfile
fd, path = tempfile.mkstemp(dir=sys.argv[1])
try:
    for i in range(24):
        os.setxattr(path, "user.swift.metadata" + (str(i) if i else ""), b"x" * 254)
finally:
    os.close(fd)
    os.unlink(path)
EOF
}

# setup_storage — points $FC_STATE/data at a directory with working user xattrs.
function setup_storage() {
  local current shm
  current="$(readlink -f "$FC_STATE/data" 2>/dev/null || true)"
  if [[ -n "$current" && -d "$current/d1" ]] && xattr_ok "$current/d1"; then
    return 0
  fi
  rm -f "$FC_STATE/data" 2>/dev/null || true
  shm="/dev/shm/fileconveyor-$(printf '%s' "$FC_STATE" | md5sum | cut -c1-12)"
  if [[ -d /dev/shm ]] && mkdir -p "$shm/d1" 2>/dev/null && xattr_ok "$shm/d1"; then
    ln -sfn "$shm" "$FC_STATE/data"
    return 0
  fi
  rm -rf "$shm" 2>/dev/null || true
  mkdir -p "$FC_STATE/data/d1"
  if ! xattr_ok "$FC_STATE/data/d1"; then
    fc_log "WARNING: neither /dev/shm nor $FC_STATE takes 6 KiB of user xattrs;" \
      "objects with large metadata will fail (503)"
  else
    fc_log "Note: /dev/shm has no usable user xattrs; storing objects in $FC_STATE/data"
  fi
}

# write_configs PROXY ACCOUNT CONTAINER OBJECT MEMCACHED KEY
function write_configs() {
  local etc="$FC_STATE" devices="$FC_STATE/data" user
  user="$(id -un)"
  local s port
  for s in account container object; do
    case "$s" in
      account) port="$2" ;;
      container) port="$3" ;;
      object) port="$4" ;;
    esac
    cat >"$etc/$s-server.conf" <<EOF
# Generated by scripts/dev-servers/swift.sh
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $port
workers = 0
user = $user
swift_dir = $etc
devices = $devices
mount_check = false
disable_fallocate = true
log_name = $s-server
log_level = INFO
log_address = $FC_STATE/no-syslog

[pipeline:main]
pipeline = healthcheck $s-server

[app:$s-server]
use = egg:swift#$s

[filter:healthcheck]
use = egg:swift#healthcheck
EOF
  done
  cat >"$etc/proxy-server.conf" <<EOF
# Generated by scripts/dev-servers/swift.sh
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $1
workers = 0
user = $user
swift_dir = $etc
log_name = proxy-server
log_level = INFO
log_address = $FC_STATE/no-syslog

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo versioned_writes proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$5

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:s3api]
use = egg:swift#s3api
location = $REGION
s3_acl = false

[filter:tempauth]
use = egg:swift#tempauth
user_${ACCOUNT}_${USER_NAME} = $6 .admin http://127.0.0.1:$1/v1/AUTH_$ACCOUNT

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo

[filter:versioned_writes]
use = egg:swift#versioned_writes
EOF
}

# build_rings ACCOUNT CONTAINER OBJECT — one-device, one-replica rings in the state dir.
function build_rings() {
  "$PY" - "$FC_STATE" "$1" "$2" "$3" <<'EOF'
import sys
from swift.common.ring import RingBuilder
swift_dir = sys.argv[1]
for name, port in zip(("account", "container", "object"), sys.argv[2:5]):
    builder = RingBuilder(6, 1, 0)
    builder.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port),
                     "device": "d1", "weight": 100, "meta": ""})
    builder.rebalance()
    builder.get_ring().save("%s/%s.ring.gz" % (swift_dir, name))
EOF
}

# s3_list_buckets ENDPOINT ACCESS SECRET — a SigV4-signed ListBuckets; prints the XML.
function s3_list_buckets() {
  "$PY" - "$@" "$REGION" <<'EOF'
import datetime, hashlib, hmac, sys, urllib.request
endpoint, access, secret, region = sys.argv[1:5]
host = endpoint.split("://", 1)[1]
now = datetime.datetime.now(datetime.timezone.utc)
amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
payload = hashlib.sha256(b"").hexdigest()
signed = "host;x-amz-content-sha256;x-amz-date"
canonical = "\n".join(["GET", "/", "", "host:%s\nx-amz-content-sha256:%s\nx-amz-date:%s\n"
                       % (host, payload, amz_date), signed, payload])
scope = "%s/%s/s3/aws4_request" % (day, region)
to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(canonical.encode()).hexdigest()])
key = ("AWS4" + secret).encode()
for part in (day, region, "s3", "aws4_request"):
    key = hmac.new(key, part.encode(), hashlib.sha256).digest()
signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
request = urllib.request.Request(endpoint + "/", headers={
    "x-amz-date": amz_date, "x-amz-content-sha256": payload,
    "Authorization": "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s"
                     % (access, scope, signed, signature)})
with urllib.request.urlopen(request, timeout=10) as response:
    sys.stdout.write(response.read().decode())
EOF
}

# readiness_check PROXY KEY — login, container + object round trip, S3 ListBuckets.
function readiness_check() {
  local proxy="$1" key="$2" headers token storage c="fc-readiness-$$"
  headers="$(curl -sS --max-time 10 -D - -o /dev/null -H "X-Auth-User: $ACCOUNT:$USER_NAME" \
    -H "X-Auth-Key: $key" "http://127.0.0.1:$proxy/auth/v1.0" | tr -d '\r')"
  token="$(sed -n 's/^[Xx]-[Aa]uth-[Tt]oken: //p' <<<"$headers")"
  storage="$(sed -n 's/^[Xx]-[Ss]torage-[Uu]rl: //p' <<<"$headers")"
  [[ -n "$token" && -n "$storage" ]] || { echo "login failed: $headers"; return 1; }
  local -a auth=(-H "X-Auth-Token: $token")
  curl -sSf --max-time 10 "${auth[@]}" -X PUT "$storage/$c" || return 1
  printf 'hello' | curl -sSf --max-time 10 "${auth[@]}" -X PUT -T - \
    -H 'Content-Type: text/plain' -H 'X-Object-Meta-Fc: readiness' "$storage/$c/o.txt" || return 1
  [[ "$(curl -sSf --max-time 10 "${auth[@]}" "$storage/$c/o.txt")" == hello ]] ||
    { echo "object GET returned something else"; return 1; }
  [[ "$(curl -sSf --max-time 10 "${auth[@]}" "$storage/$c?format=json")" == *'"o.txt"'* ]] ||
    { echo "container listing lacks o.txt"; return 1; }
  local xml
  xml="$(s3_list_buckets "http://127.0.0.1:$proxy" "$ACCOUNT:$USER_NAME" "$key")" || return 1
  [[ "$xml" == *"<Name>$c</Name>"* ]] || { echo "S3 ListBuckets lacks $c: $xml"; return 1; }
  curl -sSf --max-time 10 "${auth[@]}" -X DELETE "$storage/$c/o.txt" || return 1
  curl -sSf --max-time 10 "${auth[@]}" -X DELETE "$storage/$c" || return 1
}

function fc_start() {
  fc_ensure_packages swift swift-proxy swift-object swift-container swift-account memcached \
    curl python3
  [[ -x "$PY" ]] || fc_die "$PY missing (Debian package python3)"
  grep -q '^\[swift-hash\]' /etc/swift/swift.conf 2>/dev/null ||
    fc_die "/etc/swift/swift.conf (from the Debian package swift) is missing or has no [swift-hash]"

  if [[ ! -s "$FC_STATE/key" ]]; then
    (umask 077 && fc_random_hex 16 >"$FC_STATE/key")
  fi
  local key
  key="$(cat "$FC_STATE/key")"
  setup_storage

  local attempt ports proxy account container object memcached s logs=()
  for s in memcached "${SERVERS[@]}"; do logs+=("$FC_STATE/$s.log"); done
  for attempt in 1 2 3; do
    ports="$(fc_pick_ports 5)"
    read -r proxy account container object memcached <<<"$ports"
    echo "$proxy $account $container $object $memcached" >"$FC_STATE/ports"
    write_configs "$proxy" "$account" "$container" "$object" "$memcached" "$key"
    build_rings "$account" "$container" "$object" >"$FC_STATE/rings.log" 2>&1 ||
      { fc_show_logs "$FC_STATE/rings.log"; fc_die "Building the rings failed"; }
    for s in "${logs[@]}"; do : >"$s"; done
    fc_spawn memcached "$FC_STATE/memcached.log" \
      memcached -l 127.0.0.1 -p "$memcached" -U 0 -u nobody -m 64 -c 1024
    for s in "${SERVERS[@]}"; do
      fc_spawn "$s" "$FC_STATE/$s.log" "/usr/bin/swift-$s-server" "$FC_STATE/$s-server.conf" -v
    done
    if fc_wait_until "$READY_TIMEOUT" "Swift healthchecks on 127.0.0.1:$proxy/$account/$container/$object" fc_status; then
      break
    fi
    fc_stop_processes
    if grep -qi "address already in use" "${logs[@]}" && [[ $attempt -lt 3 ]]; then
      fc_log "A port was taken, retrying with others"
      continue
    fi
    fc_show_logs "${logs[@]}"
    fc_die "Swift did not become ready within ${READY_TIMEOUT}s"
  done

  if ! readiness_check "$proxy" "$key" >"$FC_STATE/readiness.log" 2>&1; then
    fc_show_logs "$FC_STATE/readiness.log" "${logs[@]}"
    fc_stop_processes
    fc_die "Swift is up but the login / container / object / S3 check failed"
  fi

  cat >"$FC_STATE/info.json.tmp" <<EOF
{
  "authUrl": "http://127.0.0.1:$proxy/auth/v1.0",
  "user": "$ACCOUNT:$USER_NAME",
  "key": $(fc_json_str "$key"),
  "storageUrl": "http://127.0.0.1:$proxy/v1/AUTH_$ACCOUNT",
  "s3Endpoint": "http://127.0.0.1:$proxy",
  "accessKeyId": "$ACCOUNT:$USER_NAME",
  "secretAccessKey": $(fc_json_str "$key"),
  "region": "$REGION"
}
EOF
  mv "$FC_STATE/info.json.tmp" "$FC_STATE/info.json"
}

fc_main "$@"
