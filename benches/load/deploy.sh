#!/usr/bin/env bash
# Deploy figures for issue 7, with the release `wh`:
#   1. `wh dev` start to ready: the first start (new cluster: initdb) and N warm restarts;
#   2. deploy request to the first 200 with the new page through wh-proxy, N times, for the
#      busybox example (examples/hello, static preset).
# Usage: benches/load/deploy.sh [N]   (default 5). Needs Podman, PostgreSQL, busybox-static.
set -euo pipefail
N=${1:-5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release -q -p wh-cli --manifest-path "$ROOT/Cargo.toml"
WH=$ROOT/target/release/wh
WORK=$(mktemp -d /tmp/wh-deploy-bench.XXXXXX)
export WH_CONFIG_DIR=$WORK/config
PROXY=127.0.0.1:18180 API=127.0.0.1:18181
DEV_PID=
cleanup() {
  [ -n "$DEV_PID" ] && kill -TERM "$DEV_PID" 2>/dev/null && wait "$DEV_PID" 2>/dev/null || true
  podman rm -f $(podman ps -aq --filter label=wh.app=benchhello) >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

start_dev() {  # sets READY to the "ready in X s" figure
  (cd "$WORK" && exec "$WH" dev --proxy-addr $PROXY --api-addr $API >"$WORK/dev.out" 2>"$WORK/dev.err") &
  DEV_PID=$!
  for _ in $(seq 1 600); do
    grep -q '^Ctrl-C' "$WORK/dev.out" 2>/dev/null && break
    sleep 0.05
  done
  READY=$(sed -n 's/.*ready in \([0-9.]*\) s.*/\1/p' "$WORK/dev.out")
}
stop_dev() { kill -TERM "$DEV_PID"; wait "$DEV_PID" || true; DEV_PID=; }

echo "wh dev start to ready (s):"
start_dev; echo "  cold (initdb): $READY"
stop_dev
for i in $(seq 1 "$N"); do start_dev; echo "  warm $i: $READY"; stop_dev; done

start_dev
mkdir -p "$WORK/benchhello"
echo "deploy request → first 200 with the new page (s):"
for i in $(seq 1 "$N"); do
  echo "<h1>bench $i $RANDOM</h1>" > "$WORK/benchhello/index.html"
  want=$(cat "$WORK/benchhello/index.html")
  t0=$(date +%s.%N)
  "$WH" deploy --path "$WORK/benchhello" >/dev/null &
  DEPLOY_PID=$!
  until [ "$(curl -s -H 'Host: benchhello.localhost' "http://$PROXY/")" = "$want" ]; do sleep 0.02; done
  t1=$(date +%s.%N)
  wait "$DEPLOY_PID"
  echo "  deploy $i: $(echo "$t1 - $t0" | bc -l | xargs printf '%.2f')"
done
