#!/usr/bin/env bash
# A/B of two wh-proxy binaries (e.g. before and after a change), interleaved rounds: req/s, p99 and
# CPU µs per request (utime+stime from /proc), same layout as run.sh (proxy on core 0, nginx backend
# and wrk -c64 on core 1). Compare the per-round ratios.
#
#   benches/load/ab.sh OLD_BINARY NEW_BINARY [rounds=5] [seconds=10]   (needs nginx wrk; root)
set -uo pipefail
for t in nginx wrk taskset; do command -v "$t" >/dev/null || { echo "missing $t: apt-get install nginx wrk util-linux" >&2; exit 1; }; done
OLD=$1; NEW=$2; ROUNDS=${3:-5}; DUR=${4:-10}
WORK=$(mktemp -d); BP=19001; PP=19080; HOST=app-0.route.example.com
cat > $WORK/nginx.conf <<CONF
worker_processes 1; daemon off; pid $WORK/nginx.pid; error_log /dev/null crit;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$BP; location / { return 200 "hello from the backend\n"; } } }
CONF
taskset -c 1 nginx -c $WORK/nginx.conf -p $WORK & NG=$!
P=
trap 'kill $NG $P 2>/dev/null; rm -rf $WORK' EXIT
echo "{\"http\":{\"routers\":{\"app-0\":{\"rule\":\"Host(\`$HOST\`)\",\"service\":\"app-0\"}},\"services\":{\"app-0\":{\"loadBalancer\":{\"servers\":[{\"url\":\"http://127.0.0.1:$BP\"}]}}}}}" > $WORK/routes.json
sleep 0.5
for r in $(seq $ROUNDS); do
  for which in old new; do
    bin=$OLD; [ $which = new ] && bin=$NEW
    rm -rf $WORK/state
    taskset -c 0 $bin --routes $WORK/routes.json --state-dir $WORK/state --http-addr 127.0.0.1:$PP --admin-addr 127.0.0.1:0 --threads 1 --log-format off --access-log off --https-addr off & P=$!
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PP) 2>/dev/null && break; sleep 0.05; done
    taskset -c 1 wrk -t1 -c64 -d2s -H "Host: $HOST" http://127.0.0.1:$PP/ >/dev/null
    b=$(awk '{print $14+$15}' /proc/$P/stat)
    out=$(taskset -c 1 wrk -t1 -c64 -d${DUR}s --latency -H "Host: $HOST" http://127.0.0.1:$PP/)
    a=$(awk '{print $14+$15}' /proc/$P/stat)
    reqs=$(echo "$out" | awk '/requests in/ {print $1}'); rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}'); p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    us=$(python3 -c "print(round(($a-$b)/$(getconf CLK_TCK)*1e6/$reqs, 2))")
    echo "round $r $which rps=$rps p99=$p99 cpu_us_per_req=$us $(echo "$out" | grep -E 'Non-2xx|Socket errors' | tr '\n' ' ')"
    kill $P; wait $P 2>/dev/null || true; sleep 0.3
  done
done
