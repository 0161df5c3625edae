# Shared by reload.sh and scrape.sh (sourced, not run): a working directory cleaned up on exit,
# the wh-proxy to measure, an nginx backend on core 1, and 10,000-router documents.
#   needs: BIN (a wh-proxy binary, or empty to build target/release/wh-proxy), BACKEND_PORT
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/wh-loadbench.XXXXXX)
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

# routes_json VARIANT: 10,000 routers to the backend; app-1's server differs by VARIANT.
routes_json() {
  python3 - 10000 "$BACKEND_PORT" "$1" <<'PY'
import json, sys
n, port, variant = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
routers = {f"app-{i}": {"rule": f"Host(`app-{i}.route.example.com`)", "service": f"app-{i}"} for i in range(n)}
services = {f"app-{i}": {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{port}"}]}} for i in range(n)}
services["app-1"]["loadBalancer"]["servers"][0]["url"] = f"http://127.0.0.{2 + variant}:{port}"
print(json.dumps({"http": {"routers": routers, "services": services}}))
PY
}

# wait_port PORT: until something accepts on 127.0.0.1:PORT (5 s at most).
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }
