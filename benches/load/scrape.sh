#!/usr/bin/env bash
# Scrape bench: what reading the admin endpoints costs the requests in flight.
#
# wh-proxy (one thread, pinned to core 0) serves 10,000 routers while wrk (core 1, 32
# connections) requests one app through it, and /metrics (about 15 MB with 10,000 routers) is
# fetched every second, as Prometheus does (more often than its usual 15 s, to see the effect).
# Prints wrk's latency distribution and the scrapes' times.
#
#   benches/load/scrape.sh [wh-proxy binary] [duration_seconds]   (needs: nginx wrk curl; root)
# Without a binary it builds and uses target/release/wh-proxy; pass an older build to compare.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${1:-}
DUR=${2:-15}
WORK=$(mktemp -d /tmp/wh-scrapebench.XXXXXX)
BACKEND_PORT=18001; PROXY_PORT=18080; ADMIN_PORT=18082
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$WORK"; }
trap cleanup EXIT
for t in nginx wrk taskset python3 curl; do command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }; done
if [ -z "$BIN" ]; then
  (cd "$ROOT" && cargo build --release -q -p wh-proxy)
  BIN="$ROOT/target/release/wh-proxy"
fi

cat > "$WORK/backend.conf" <<CONF
worker_processes 1; daemon off; pid $WORK/backend.pid; error_log /dev/null crit;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$BACKEND_PORT; location / { return 200 "hello\n"; } } }
CONF
taskset -c 1 nginx -c "$WORK/backend.conf" -p "$WORK" & PIDS+=($!)

python3 - 10000 "$BACKEND_PORT" > "$WORK/routes.json" <<'PY'
import json, sys
n, port = int(sys.argv[1]), sys.argv[2]
routers = {f"app-{i}": {"rule": f"Host(`app-{i}.route.example.com`)", "service": f"app-{i}"} for i in range(n)}
services = {f"app-{i}": {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{port}"}]}} for i in range(n)}
print(json.dumps({"http": {"routers": routers, "services": services}}))
PY
taskset -c 0 "$BIN" --routes "$WORK/routes.json" --state-dir "$WORK/state" \
  --http-addr 127.0.0.1:$PROXY_PORT --admin-addr 127.0.0.1:$ADMIN_PORT --threads 1 \
  --log-format off --access-log off & PIDS+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PROXY_PORT) 2>/dev/null && break; sleep 0.05; done
sleep 1

scrapes=$((DUR - 1))
( for _ in $(seq 1 "$scrapes"); do
    sleep 1
    taskset -c 1 curl -s -o /dev/null -w "%{time_total} %{size_download}\n" "http://127.0.0.1:$ADMIN_PORT/metrics" >> "$WORK/scrapes"
  done ) & SCRAPER=$!
taskset -c 1 wrk -t1 -c32 -d"${DUR}s" --latency -H "Host: app-7.route.example.com" \
  "http://127.0.0.1:$PROXY_PORT/" | grep -E "Latency|50%|90%|99%|Requests/sec|Non-2xx|Socket errors"
wait "$SCRAPER" || true
sort -n "$WORK/scrapes" | awk '{t[NR]=$1; b=$2} END {printf "scrapes: %d of %.1f MB; median %.0f ms, max %.0f ms\n", NR, b/1e6, t[int((NR+1)/2)]*1000, t[NR]*1000}'
