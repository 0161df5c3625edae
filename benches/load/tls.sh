#!/usr/bin/env bash
# TLS bench: wh-proxy vs nginx and HAProxy terminating TLS with the same ECDSA P-256 certificate.
#
# As run.sh: proxy pinned to core 0 (one worker / one thread), backend (nginx, 200) and wrk on
# core 1, 64 connections, access logs off. Two figures per proxy:
#   keep-alive: requests/s and the proxy's CPU µs per request over reused TLS connections;
#   handshake:  a new TLS connection per request (Connection: close, no resumption), and the
#               proxy's CPU ms per handshake.
# Then the memory of 1,000 certificates loaded in wh-proxy (RSS with 1,000 minus RSS with none).
#
#   benches/load/tls.sh [duration_seconds]     (needs: nginx haproxy wrk openssl; run as root)
set -euo pipefail
DUR=${1:-10}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/wh-tlsbench.XXXXXX)
BACKEND_PORT=18001; HTTP_PORT=18080; TLS_PORT=18443; HOST=app-0.route.example.com
PIDS=()
HOSTS_BACKUP=$(mktemp); cp /etc/hosts "$HOSTS_BACKUP"
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; cp "$HOSTS_BACKUP" /etc/hosts; rm -rf "$WORK" "$HOSTS_BACKUP"; }
trap cleanup EXIT
for t in nginx haproxy wrk openssl taskset; do command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }; done
(cd "$ROOT" && cargo build --release -q -p wh-proxy)
WHPROXY="$ROOT/target/release/wh-proxy"

openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/key.pem" 2>/dev/null
openssl req -new -x509 -key "$WORK/key.pem" -out "$WORK/cert.pem" -days 90 -subj "/CN=$HOST" -addext "subjectAltName=DNS:$HOST" 2>/dev/null
cat "$WORK/cert.pem" "$WORK/key.pem" > "$WORK/combined.pem"

mkdir -p "$WORK/backend"
cat > "$WORK/backend/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $WORK/backend/nginx.pid; error_log /dev/null crit;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$BACKEND_PORT; location / { return 200 "hello from the backend\n"; } } }
CONF
taskset -c 1 nginx -c "$WORK/backend/nginx.conf" -p "$WORK/backend" & PIDS+=($!)

tree_ticks() { local t=0; for p in $1 $(pgrep -P "$1" || true); do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $t; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
RESULTS="$WORK/results"
measure() { # $1 name, $2 pid, $3 mode (keepalive|handshake)
  local extra=(); [ "$3" = handshake ] && extra=(-H "Connection: close")
  wait_port $TLS_PORT
  taskset -c 1 wrk -t1 -c64 -d2s "${extra[@]}" "https://$HOST:$TLS_PORT/" >/dev/null 2>&1 || true
  local before after out reqs rps
  before=$(tree_ticks "$2")
  out=$(taskset -c 1 wrk -t1 -c64 -d"${DUR}s" --latency "${extra[@]}" "https://$HOST:$TLS_PORT/")
  after=$(tree_ticks "$2")
  reqs=$(echo "$out" | awk '/requests in/ {print $1}'); rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  echo "$1 $3 $rps $(python3 -c "print(round(($after-$before)/$(getconf CLK_TCK)*1e6/$reqs, 2))") $(echo "$out" | awk '/Non-2xx|Socket errors/' | tr '\n' ' ')" >> "$RESULTS"
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; sleep 0.3; }
# wrk takes SNI from the URL: point the name at loopback for the run (restored on exit).
grep -q " $HOST" /etc/hosts || echo "127.0.0.1 $HOST" >> /etc/hosts

for mode in keepalive handshake; do
  mkdir -p "$WORK/nginx"
  cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $WORK/nginx/nginx.pid; error_log /dev/null crit;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream app { server 127.0.0.1:$BACKEND_PORT; keepalive 128; }
  server { listen 127.0.0.1:$TLS_PORT ssl; server_name $HOST;
    ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;
    ssl_session_cache off; ssl_session_tickets off;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host \$host; } } }
CONF
  taskset -c 0 nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" & pid=$!; measure nginx $pid $mode; stop $pid

  cat > "$WORK/haproxy.cfg" <<CONF
global
  nbthread 1
  tune.ssl.cachesize 0
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:$TLS_PORT ssl crt $WORK/combined.pem alpn http/1.1 no-tls-tickets
  default_backend app
backend app
  http-reuse always
  server s1 127.0.0.1:$BACKEND_PORT
CONF
  taskset -c 0 haproxy -f "$WORK/haproxy.cfg" -db & pid=$!; measure haproxy $pid $mode; stop $pid

  state="$WORK/wh-state"; mkdir -p "$state/certs/$HOST"
  cp "$WORK/cert.pem" "$state/certs/$HOST/cert.pem"; cp "$WORK/key.pem" "$state/certs/$HOST/key.pem"
  echo "{\"http\":{\"routers\":{\"app\":{\"rule\":\"Host(\`$HOST\`)\",\"service\":\"app\",\"tls\":{}}},\"services\":{\"app\":{\"loadBalancer\":{\"servers\":[{\"url\":\"http://127.0.0.1:$BACKEND_PORT\"}]}}}}}" > "$WORK/routes.json"
  # The certificate is valid for 90 days, so no order is attempted; the directory is never reached.
  taskset -c 0 "$WHPROXY" --routes "$WORK/routes.json" --state-dir "$state" --http-addr 127.0.0.1:$HTTP_PORT \
    --https-addr 127.0.0.1:$TLS_PORT --acme-directory http://127.0.0.1:9/unused --admin-addr 127.0.0.1:0 \
    --threads 1 --log-format off --access-log off & pid=$!
  measure wh-proxy $pid $mode; stop $pid
done

# Memory of 1,000 certificates.
rss_with() { # $1 = number of certificates
  local state="$WORK/mem-$1"; mkdir -p "$state/certs"
  local routers="" services=""
  for i in $(seq 1 "$1"); do
    local h="host-$i.example.com"; mkdir -p "$state/certs/$h"
    openssl ecparam -name prime256v1 -genkey -noout -out "$state/certs/$h/key.pem" 2>/dev/null
    openssl req -new -x509 -key "$state/certs/$h/key.pem" -out "$state/certs/$h/cert.pem" -days 90 -subj "/CN=$h" -addext "subjectAltName=DNS:$h" 2>/dev/null
  done
  python3 - "$1" "$BACKEND_PORT" > "$state/routes.json" <<'PY'
import json, sys
n, port = int(sys.argv[1]), sys.argv[2]
r = {f"h{i}": {"rule": f"Host(`host-{i}.example.com`)", "service": "s", "tls": {}} for i in range(1, n + 1)}
r["plain"] = {"rule": "Host(`plain.test`)", "service": "s"}
print(json.dumps({"http": {"routers": r, "services": {"s": {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{port}"}]}}}}}))
PY
  "$WHPROXY" --routes "$state/routes.json" --state-dir "$state" --http-addr 127.0.0.1:$HTTP_PORT --https-addr 127.0.0.1:$TLS_PORT \
    --acme-directory http://127.0.0.1:9/unused --admin-addr 127.0.0.1:0 --threads 1 --log-format off --access-log off & local p=$!
  wait_port $TLS_PORT; sleep 1
  awk '/VmRSS/ {print $2}' /proc/$p/status
  stop $p
}
rss0=$(rss_with 0); rss1000=$(rss_with 1000)

echo
echo "date: $(date -u +%F) machine: $(nproc) cores, $(uname -r); wrk -t1 -c64 -d${DUR}s over TLS; proxy on core 0"
python3 - "$RESULTS" "$rss0" "$rss1000" <<'PY'
import sys
rows = [l.split(None, 4) for l in open(sys.argv[1]) if l.strip()]
base = {r[1]: float(r[3]) for r in rows if r[0] == "nginx"}
print(f"{'proxy':<10}{'mode':<11}{'req/s':>10}{'CPU/req':>14}{'÷ nginx':>9}  notes")
for r in rows:
    cpu = float(r[3]); unit = "µs" if r[1] == "keepalive" else "ms"
    shown = cpu if r[1] == "keepalive" else cpu / 1000
    print(f"{r[0]:<10}{r[1]:<11}{float(r[2]):>10.0f}{shown:>11.3f} {unit}{cpu/base[r[1]]:>9.2f}  {r[4].strip() if len(r) > 4 else ''}")
print(f"wh-proxy RSS: {sys.argv[2]} KiB with no certificates, {sys.argv[3]} KiB with 1,000 -> {(int(sys.argv[3]) - int(sys.argv[2])) / 1024:.1f} MiB for 1,000")
PY
