#!/usr/bin/env bash
# Load bench: wh-proxy vs nginx, HAProxy and Caddy (Debian packages) in one run, same request.
#
# Layout on a 2-core machine: the proxy under test is pinned to core 0 (wh-proxy with one
# runtime thread); the backend (nginx answering 200) and wrk are pinned to core 1. Every proxy
# forwards Host-routed requests to the backend over 64 keep-alive connections, access logs off.
# For each it prints requests/s, p50, p99 and the proxy's CPU time per request
# ((utime+stime) from /proc before and after the run / requests served), with ratios to nginx.
#
#   benches/load/run.sh [duration_seconds]      (needs: nginx haproxy caddy wrk; run as root)
set -euo pipefail
DUR=${1:-10}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/wh-loadbench.XXXXXX)
BACKEND_PORT=18001; PROXY_PORT=18080; HOST=app-0.route.example.com
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$WORK"; }
trap cleanup EXIT
for t in nginx haproxy caddy wrk taskset; do command -v "$t" >/dev/null || { echo "missing $t: apt-get install nginx haproxy caddy wrk util-linux" >&2; exit 1; }; done

echo "building wh-proxy (release)..." >&2
(cd "$ROOT" && cargo build --release -q -p wh-proxy)
WHPROXY="$ROOT/target/release/wh-proxy"

# Backend: nginx, one worker on core 1, fixed 200.
mkdir -p "$WORK/backend"
cat > "$WORK/backend/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $WORK/backend/nginx.pid; error_log /dev/null crit;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$BACKEND_PORT; location / { return 200 "hello from the backend\n"; } } }
CONF
taskset -c 1 nginx -c "$WORK/backend/nginx.conf" -p "$WORK/backend" & PIDS+=($!)

routes_json() { # $1 = number of routers
  python3 - "$1" "$BACKEND_PORT" <<'PY'
import json, sys
n, port = int(sys.argv[1]), sys.argv[2]
routers = {f"app-{i}": {"rule": f"Host(`app-{i}.route.example.com`)", "service": f"app-{i}"} for i in range(n)}
services = {f"app-{i}": {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{port}"}]}} for i in range(n)}
print(json.dumps({"http": {"routers": routers, "services": services}}))
PY
}

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
user_ticks() { awk '{print $14}' "/proc/$1/stat"; }
# Sum over a process and its children (nginx/haproxy workers); $2 = cpu_ticks or user_ticks.
tree_ticks() { local t=0; for p in $1 $(pgrep -P "$1" || true); do t=$((t + $(${2:-cpu_ticks} "$p"))); done; echo $t; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }

RESULTS="$WORK/results"
measure() { # $1 = name, $2 = pid
  local name=$1 pid=$2
  wait_port $PROXY_PORT
  taskset -c 1 wrk -t1 -c64 -d2s -H "Host: $HOST" "http://127.0.0.1:$PROXY_PORT/" >/dev/null
  local before after out
  before=$(tree_ticks "$pid"); user_before=$(tree_ticks "$pid" user_ticks)
  out=$(taskset -c 1 wrk -t1 -c64 -d"${DUR}s" --latency -H "Host: $HOST" "http://127.0.0.1:$PROXY_PORT/")
  after=$(tree_ticks "$pid"); user_after=$(tree_ticks "$pid" user_ticks)
  local reqs rps p50 p99 errors
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  errors=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
  local hz; hz=$(getconf CLK_TCK)
  local cpu_us; cpu_us=$(python3 -c "print(round(($after-$before)/$hz*1e6/$reqs, 2))")
  local user_us; user_us=$(python3 -c "print(round(($user_after-$user_before)/$hz*1e6/$reqs, 2))")
  echo "$name $rps $p50 $p99 $cpu_us $user_us $(rss_kib "$pid") $errors" >> "$RESULTS"
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; sleep 0.3; }

wait_port $BACKEND_PORT
# Direct to the backend, for the ceiling of this machine.
before_direct=$(taskset -c 1 wrk -t1 -c64 -d"${DUR}s" --latency "http://127.0.0.1:$BACKEND_PORT/" | awk '/Requests\/sec/ {print $2}')
echo "direct $before_direct - - - - - " >> "$RESULTS"

# nginx as proxy.
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $WORK/nginx/nginx.pid; error_log /dev/null crit;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream app { server 127.0.0.1:$BACKEND_PORT; keepalive 128; }
  server { listen 127.0.0.1:$PROXY_PORT; server_name $HOST;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$remote_addr; } } }
CONF
taskset -c 0 nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" & pid=$!; measure nginx $pid; stop $pid

# HAProxy.
cat > "$WORK/haproxy.cfg" <<CONF
global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:$PROXY_PORT
  option forwardfor
  use_backend app if { hdr(host) -i $HOST }
backend app
  http-reuse always
  server s1 127.0.0.1:$BACKEND_PORT
CONF
taskset -c 0 haproxy -f "$WORK/haproxy.cfg" -db & pid=$!; measure haproxy $pid; stop $pid

# Caddy.
cat > "$WORK/Caddyfile" <<CONF
{
  admin off
  auto_https off
}
http://$HOST:$PROXY_PORT {
  reverse_proxy 127.0.0.1:$BACKEND_PORT
}
CONF
GOMAXPROCS=1 taskset -c 0 caddy run --config "$WORK/Caddyfile" --adapter caddyfile >/dev/null 2>&1 & pid=$!; measure caddy $pid; stop $pid

# wh-proxy, one router and 10,000 routers.
for n in 1 10000; do
  routes_json $n > "$WORK/routes-$n.json"
  taskset -c 0 "$WHPROXY" --routes "$WORK/routes-$n.json" --state-dir "$WORK/state-$n" --http-addr 127.0.0.1:$PROXY_PORT \
    --admin-addr 127.0.0.1:0 --threads 1 --log-format off --access-log off & pid=$!
  if [ "$n" = 1 ]; then measure wh-proxy $pid; else measure "wh-proxy(10k)" $pid; fi
  stop $pid
done

echo
echo "date: $(date -u +%F) machine: $(nproc) cores, $(uname -r); wrk -t1 -c64 -d${DUR}s; proxy on core 0, backend+wrk on core 1"
python3 - "$RESULTS" <<'PY'
import sys
rows = [l.split(None, 7) for l in open(sys.argv[1]) if l.strip()]
ng = next(r for r in rows if r[0] == "nginx")
print(f"{'proxy':<15}{'req/s':>10}{'p50':>10}{'p99':>10}{'CPU µs/req':>12}{'user µs':>9}{'RSS KiB':>10}{'rps/nginx':>11}{'cpu/nginx':>11}  notes")
for r in rows:
    name, rps = r[0], float(r[1])
    if name == "direct":
        print(f"{name:<15}{rps:>10.0f}"); continue
    cpu = float(r[4])
    print(f"{name:<15}{rps:>10.0f}{r[2]:>10}{r[3]:>10}{cpu:>12.2f}{float(r[5]):>9.2f}{r[6]:>10}{rps/float(ng[1]):>11.2f}{cpu/float(ng[4]):>11.2f}  {r[7].strip() if len(r) > 7 else ''}")
PY
