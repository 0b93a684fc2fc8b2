#!/usr/bin/env bash
# Installs the system tools weft and its tests use, when they are missing (Debian/Ubuntu).
# `--tests` adds what only the tests need (a headless Chromium for the topology page).
set -euo pipefail
need=()
if [ "${1:-}" = "--tests" ]; then
  [ -x /usr/bin/chromium ] || need+=(chromium)
fi
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
command -v nft >/dev/null || need+=(nftables)
command -v conntrack >/dev/null || need+=(conntrack)
command -v ping >/dev/null || need+=(iputils-ping)
command -v iperf3 >/dev/null || need+=(iperf3)
command -v tcpdump >/dev/null || need+=(tcpdump)
command -v nsenter >/dev/null || need+=(util-linux)
[ -x /usr/lib/cni/portmap ] || need+=(containernetworking-plugins)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "weft needs: ${need[*]} (run as root, or install them yourself)" >&2
    exit 1
  fi
  echo "installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
