#!/usr/bin/env bash
# Reload bench: what configuration updates cost the requests in flight.
#
# wh-proxy (one thread, pinned to core 0) serves 10,000 routers from a routes file while wrk
# (core 1, 32 connections) requests one app through it, and the file is replaced every 1.1 s by
# a document one server away from the last one, as a deploy changes it. Prints wrk's latency
# distribution, and the apply times wh-proxy logs ("configuration applied": swapped_ms until the
# new table serves, total_ms with the last-known-good snapshot written).
#
#   benches/load/reload.sh [wh-proxy binary] [duration_seconds]   (needs: nginx wrk; run as root)
# Without a binary it builds and uses target/release/wh-proxy; pass an older build to compare.
set -euo pipefail
BIN=${1:-}
DUR=${2:-15}
BACKEND_PORT=18001; PROXY_PORT=18080
source "$(dirname "$0")/tenk.sh"

routes_json 0 > "$WORK/routes-0.json"
routes_json 1 > "$WORK/routes-1.json"
cp "$WORK/routes-0.json" "$WORK/routes.json"
taskset -c 0 "$BIN" --routes "$WORK/routes.json" --state-dir "$WORK/state" \
  --http-addr 127.0.0.1:$PROXY_PORT --admin-addr 127.0.0.1:0 --threads 1 \
  --log-format json --access-log off 2> "$WORK/proxy.log" & PIDS+=($!)
wait_port $PROXY_PORT
sleep 1

flips=$(python3 -c "print(int($DUR / 1.1) - 1)")
( for i in $(seq 1 "$flips"); do
    sleep 1.1
    cp "$WORK/routes-$((i % 2)).json" "$WORK/routes.tmp" && mv "$WORK/routes.tmp" "$WORK/routes.json"
  done ) & FLIPPER=$!
taskset -c 1 wrk -t1 -c32 -d"${DUR}s" --latency -H "Host: app-7.route.example.com" \
  "http://127.0.0.1:$PROXY_PORT/" | grep -E "Latency|50%|90%|99%|Requests/sec|Non-2xx|Socket errors"
wait "$FLIPPER" || true
python3 - "$WORK/proxy.log" <<'PY'
import json, sys
rows = []
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    f = e.get("fields", e)
    if f.get("message") == "configuration applied" and "total_ms" in f:
        rows.append((float(f["swapped_ms"]), float(f["total_ms"])))
rows = rows[1:]  # the first load at start
if rows:
    sw = sorted(r[0] for r in rows); tot = sorted(r[1] for r in rows)
    print(f"applies: {len(rows)}; swapped_ms median {sw[len(sw)//2]:.1f} max {sw[-1]:.1f}; "
          f"total_ms median {tot[len(tot)//2]:.1f} max {tot[-1]:.1f}")
else:
    print("applies: the proxy logged no apply times (an older build?)")
PY
