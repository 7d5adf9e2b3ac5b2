#!/usr/bin/env bash
# Installs, with apt-get, the tools that the demo, the end-to-end tests and
# the benchmarks run (when they are missing and we are root on Debian).
# Without root it only says what is missing: the tests that need a tool
# skip and say why, except in CI (CI=true), where they fail
# (internal/testenv): this list must hold every tool a test runs.
set -euo pipefail

declare -A pkg=(
  [ip]=iproute2 [ss]=iproute2 [iptables]=iptables [nft]=nftables [conntrack]=conntrack [sysctl]=procps
  [ping]=iputils-ping [iperf3]=iperf3 [socat]=socat [dig]=dnsutils [wg]=wireguard-tools
  [miniupnpd]=miniupnpd-nftables [upnpc]=miniupnpc [dnsmasq]=dnsmasq-base [dnsperf]=dnsperf
  [setpriv]=util-linux [nsenter]=util-linux [unshare]=util-linux [getent]=libc-bin
)
missing=()
for cmd in "${!pkg[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg[$cmd]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing (install them for the namespace tests): ${missing[*]}" >&2
  exit 0
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
