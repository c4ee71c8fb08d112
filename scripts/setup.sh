#!/usr/bin/env bash
# Install what meshfed needs on a fresh Debian machine: Debian packages (only those missing),
# then the npm dependencies from package-lock.json, then build. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the build, the tests and the demo use.
#   openssl: the TLS tests check generated certificates with the real openssl CLI.
#   golang-go + the HashiCorp -dev packages: the interop tests build Go reference peers
#   (test/interop/*) against HashiCorp's own yamux, net-rpc-msgpackrpc, go-msgpack, memberlist
#   and serf. serf: the Debian serf agent binary (/usr/bin/serf), a real gossip pool for interop tests.
#   etcd-server + etcd-client: the etcd backend of the state plugin (HA servers) is tested against
#   real etcd clusters on loopback, and examples/ha-datacenter runs one.
#   gcc + libc6-dev: the mesh gateway's native data plane (a Node-API addon, scripts/build-native.sh;
#   Node's headers come with the nodejs package).
DEBIAN_PACKAGES=(
  openssl ca-certificates gcc libc6-dev
  golang-go golang-github-hashicorp-yamux-dev golang-github-hashicorp-net-rpc-msgpackrpc-dev golang-github-hashicorp-go-msgpack-dev
  serf golang-github-hashicorp-memberlist-dev golang-github-hashicorp-serf-dev
  etcd-server etcd-client
)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -o DPkg::Lock::Timeout=600
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}"
fi

if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.meshfed-lock-stamp; then
  echo "setup: installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund
  cp package-lock.json node_modules/.meshfed-lock-stamp
fi

npm run --silent build
