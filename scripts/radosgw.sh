#!/bin/sh
# A throwaway Ceph S3 endpoint for cmr's integration tests (Debian packages only): one monitor,
# one memory-backed OSD (memstore), auth off, pools of size 1, radosgw (beast) on loopback.
#
#   scripts/radosgw.sh install            apt-get install the Ceph packages if missing (idempotent)
#   scripts/radosgw.sh start DIR [PORT]   install if needed, start everything under DIR, print
#                                         AWS_ENDPOINT_URL=... AWS_ACCESS_KEY_ID=... lines
#   scripts/radosgw.sh stop DIR           stop the daemons started under DIR and remove DIR
#
# Needs root (apt-get; daemons run as the caller). Everything binds 127.0.0.1. Nothing persists:
# the OSD keeps its objects in memory and DIR is removed by stop.
set -eu

PKGS="ceph-mon ceph-osd radosgw ceph-common"

install_ceph() {
  if command -v ceph-mon >/dev/null 2>&1 && command -v ceph-osd >/dev/null 2>&1 && command -v radosgw >/dev/null 2>&1 && command -v radosgw-admin >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" != "0" ]; then
    echo "radosgw.sh: the Ceph packages are missing and installing them needs root: apt-get install -y --no-install-recommends $PKGS" >&2
    exit 2
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PKGS >&2 ||
    { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PKGS >&2; }
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for() { # seconds, description, command...
  limit=$1; what=$2; shift 2
  deadline=$(($(date +%s) + limit))
  while ! "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then echo "radosgw.sh: $what did not come up within ${limit}s (logs in $DIR/log)" >&2; exit 3; fi
    sleep 0.2
  done
}

start() {
  install_ceph
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd)
  mkdir -p "$DIR/mon" "$DIR/osd" "$DIR/rgw" "$DIR/run" "$DIR/log"
  MONPORT=$(free_port)
  FSID=$(cat /proc/sys/kernel/random/uuid)
  CONF="$DIR/ceph.conf"
  cat >"$CONF" <<CONF
[global]
fsid = $FSID
mon_host = v2:127.0.0.1:$MONPORT
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
# Without this radosgw waits 300 s on the monitor's auth mode.
ms_mon_client_mode = crc secure
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_max_pg_per_osd = 1000
osd_objectstore = memstore
memstore_device_bytes = 2147483648
run_dir = $DIR/run
admin_socket = $DIR/run/\$name.asok
pid_file = $DIR/run/\$name.pid
log_file = $DIR/log/\$name.log
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
[mon.a]
mon_data = $DIR/mon
[osd.0]
osd_data = $DIR/osd
[client.rgw.cmr]
rgw_frontends = beast endpoint=127.0.0.1:$PORT
rgw_data = $DIR/rgw
rgw_dns_name = 127.0.0.1
CONF
  monmaptool --create --addv a "[v2:127.0.0.1:$MONPORT]" --fsid "$FSID" "$DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" -i a
  wait_for 20 "the monitor" ceph -c "$CONF" --connect-timeout 2 mon stat
  OSD_ID=$(ceph -c "$CONF" osd create)
  ceph-osd -c "$CONF" -i "$OSD_ID" --mkfs >/dev/null 2>&1
  ceph-osd -c "$CONF" -i "$OSD_ID" 2>>"$DIR/log/osd-start.log"
  wait_for 30 "the OSD" sh -c "ceph -c '$CONF' osd stat | grep -q '1 up'"
  radosgw -c "$CONF" -n client.rgw.cmr
  wait_for 60 "radosgw" python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/', timeout=1)"
  radosgw-admin -c "$CONF" user create --uid=cmr --display-name=cmr --access-key=cmr-test-access --secret-key=cmr-test-secret >/dev/null
  echo "AWS_ENDPOINT_URL=http://127.0.0.1:$PORT"
  echo "AWS_ACCESS_KEY_ID=cmr-test-access"
  echo "AWS_SECRET_ACCESS_KEY=cmr-test-secret"
  echo "AWS_REGION=us-east-1"
  echo "CMR_S3_PATH_STYLE=1"
}

stop() {
  [ -d "$DIR" ] || return 0
  pids=""
  for f in "$DIR"/run/*.pid; do
    [ -f "$f" ] && pids="$pids $(cat "$f")"
  done
  for pid in $pids; do kill "$pid" 2>/dev/null || true; done
  deadline=$(($(date +%s) + 10))
  for pid in $pids; do
    while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$DIR"
}

case "${1:-}" in
  install) install_ceph ;;
  start) DIR=${2:?usage: radosgw.sh start DIR [PORT]}; PORT=${3:-$(free_port)}; start ;;
  stop) DIR=${2:?usage: radosgw.sh stop DIR}; stop ;;
  *) echo "usage: radosgw.sh install | start DIR [PORT] | stop DIR" >&2; exit 64 ;;
esac
