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
BIN=${1:-}
DUR=${2:-15}
BACKEND_PORT=18001; PROXY_PORT=18080; ADMIN_PORT=18082
source "$(dirname "$0")/tenk.sh"

routes_json 0 > "$WORK/routes.json"
taskset -c 0 "$BIN" --routes "$WORK/routes.json" --state-dir "$WORK/state" \
  --http-addr 127.0.0.1:$PROXY_PORT --admin-addr 127.0.0.1:$ADMIN_PORT --threads 1 \
  --log-format off --access-log off & PIDS+=($!)
wait_port $PROXY_PORT
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
