#!/bin/sh
# nftables for cmr's multi-host test (packet loss inside a network namespace the test made):
#
#   scripts/nftables.sh install     apt-get install nftables if `nft` is missing (idempotent)
#
# Needs root to install. Prints nothing on stdout; says what it does on stderr. The kernel here
# has no netem, so loss is an nftables rule (`numgen random mod 100 < 20 drop`), never tc.
set -eu

install_nft() {
  if command -v nft >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" != "0" ]; then
    echo "nftables.sh: nft is missing and installing it needs root: apt-get install -y --no-install-recommends nftables" >&2
    exit 2
  fi
  echo "nftables.sh: installing nftables (Debian package)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nftables >&2 ||
    { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nftables >&2; }
  command -v nft >/dev/null 2>&1 || { echo "nftables.sh: nftables installed but nft is not on PATH" >&2; exit 3; }
}

case "${1:-}" in
  install) install_nft ;;
  *)
    echo "usage: scripts/nftables.sh install" >&2
    exit 2
    ;;
esac
