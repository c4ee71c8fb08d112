#!/usr/bin/env bash
# Build the mesh gateway's optional native relay (src/plugins/mesh-gateway/native/relay.c with
# fastpath.h, a Node-API addon; Linux only: epoll, pthreads) next to its compiled loader in dist/.
# Needs a C compiler and Node's headers
# (Debian's/NodeSource's nodejs package ships them in <prefix>/include/node). Without them it
# says so and exits 0: the gateway then uses its `handles` data plane. Warnings are shown, not
# fatal (another compiler may warn differently); a compile error fails the build.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=src/plugins/mesh-gateway/native/relay.c
OUT=dist/src/plugins/mesh-gateway/native/relay.node
CC=${CC:-cc}
NODE_INCLUDE=${NODE_INCLUDE:-$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")/include/node}
if [ "$(uname -s)" != Linux ]; then
  echo "build-native: the native relay needs Linux (epoll): not built; the gateway uses its handles data plane" >&2
  rm -f "$OUT"
  exit 0
fi
if ! command -v "$CC" >/dev/null 2>&1 || [ ! -f "$NODE_INCLUDE/node_api.h" ] || [ ! -f "$NODE_INCLUDE/uv.h" ]; then
  echo "build-native: no C compiler ($CC) or no Node headers in $NODE_INCLUDE: the native relay is not built; the gateway uses its handles data plane" >&2
  rm -f "$OUT"
  exit 0
fi
HEADERS=src/plugins/mesh-gateway/native/fastpath.h
if [ -f "$OUT" ] && [ "$OUT" -nt "$SRC" ] && [ "$OUT" -nt "$HEADERS" ] && [ "$OUT" -nt "$0" ]; then exit 0; fi
mkdir -p "$(dirname "$OUT")"
"$CC" -O2 -fPIC -shared -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -I"$NODE_INCLUDE" "$SRC" -o "$OUT.tmp" -lpthread
mv "$OUT.tmp" "$OUT"
