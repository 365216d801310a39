#!/bin/bash
# Proxy benchmark: a backend (nginx serving a 1 KiB answer on a unix socket) behind
# berth's front (app site, 2 workers, access log on) and behind nginx (2 workers,
# upstream keepalive 64, proxy_http_version 1.1, access log on), H2O (2 threads,
# upstream keep-alive, access log on) and HAProxy (nbthread 2) when installed.
# wrk -t2 -c64, interleaved rounds, medians, ratios.
#   bench/proxy.sh     (uses $BERTH_BUILD_DIR, default build-front-rel)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
BUILD=${BERTH_BUILD_DIR:-$ROOT/build-front-rel}
HARNESS=$BUILD/src/front/front-harness
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
NGINX=$(command -v nginx || true)
HAPROXY=$(command -v haproxy || true)
[ -x "$HARNESS" ] || { echo "bench: build $HARNESS first" >&2; exit 1; }
[ -n "$NGINX" ] || { echo "bench: nginx is needed for the backend (apt-get install nginx-light)" >&2; exit 1; }

bench_tmpdir

FRONT_UID=${FRONT_UID:-199999}
mkdir -p "$T/backend/logs" "$T/backend/www" "$T/px/logs" "$T/sites/app/public" "$T/sites/app/logs"
head -c 1024 /dev/urandom > "$T/backend/www/1k.bin"
chmod -R a+rX "$T/backend"
if [ "$(id -u)" = 0 ]; then chown $FRONT_UID "$T/sites/app/logs"; chmod 755 "$T/sites" "$T/sites/app"; fi

# The backend: nginx with one worker per core on a unix socket the front may use.
nginx_conf_head "$T/backend" > "$T/backend/nginx.conf"
cat >> "$T/backend/nginx.conf" <<N
    access_log off;
    keepalive_requests 100000;
    types { application/octet-stream bin; }
    server { listen unix:$T/backend/app.sock; root $T/backend/www; }
}
N
"$NGINX" -p "$T/backend" -c "$T/backend/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
for _ in $(seq 100); do [ -S "$T/backend/app.sock" ] && break; sleep 0.05; done
chmod 777 "$T/backend/app.sock"

echo "name=app type=app public=$T/sites/app/public logs=$T/sites/app/logs uid=1001 backend=$T/backend/app.sock hosts=app.localhost" > "$T/routes"
start_harness
SERVERS=(berth)
declare -A PORT=([berth]=$BERTH_PORT)

NGINX_PORT=$(free_port)
nginx_conf_head "$T/px" > "$T/px/nginx.conf"
cat >> "$T/px/nginx.conf" <<N
    access_log $T/px/logs/access.log;
    tcp_nodelay on;
    keepalive_requests 100000;
    upstream app { server unix:$T/backend/app.sock; keepalive 64; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
N
"$NGINX" -p "$T/px" -c "$T/px/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
SERVERS+=(nginx); PORT[nginx]=$NGINX_PORT

H2O=$(command -v h2o || true)
if [ -n "$H2O" ]; then
    H2O_PORT=$(free_port)
    mkdir -p "$T/h2o"
    cat > "$T/h2o/h2o.conf" <<H
num-threads: 2
listen:
  host: 127.0.0.1
  port: $H2O_PORT
access-log: $T/h2o/access.log
proxy.timeout.keepalive: 60000
proxy.preserve-host: ON
hosts:
  "app.localhost":
    paths:
      /:
        proxy.reverse.url: "http://[unix:$T/backend/app.sock]/"
H
    "$H2O" -c "$T/h2o/h2o.conf" >"$T/h2o/stderr" 2>&1 &
    PIDS+=($!)
    SERVERS+=(h2o); PORT[h2o]=$H2O_PORT
fi

if [ -n "$HAPROXY" ]; then
    HA_PORT=$(free_port)
    cat > "$T/haproxy.cfg" <<H
global
    nbthread 2
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    http-reuse always
frontend fe
    bind 127.0.0.1:$HA_PORT
    default_backend be
backend be
    server app unix@$T/backend/app.sock
H
    "$HAPROXY" -f "$T/haproxy.cfg" -db >/dev/null 2>&1 &
    PIDS+=($!)
    SERVERS+=(haproxy); PORT[haproxy]=$HA_PORT
fi
sleep 1

run() { wrk_run 64 app.localhost "http://127.0.0.1:$1/1k.bin"; }   # $1 port

echo "machine: $(nproc) CPUs, $(uname -r); proxy 1 KiB, wrk -t2 -c64 -d$DURATION, $ROUNDS rounds interleaved"
declare -A RPS=() P99=() MED=()
for s in "${SERVERS[@]}"; do run "${PORT[$s]}" >/dev/null; done
for r in $(seq "$ROUNDS"); do
    for s in "${SERVERS[@]}"; do
        read -r rps p99 < <(run "${PORT[$s]}")
        RPS[$s]+="$rps "; P99[$s]+="$p99 "
        echo "  round $r $s: $rps req/s, p99 $p99 ms"
    done
done
for s in "${SERVERS[@]}"; do
    MED[$s]=$(tr ' ' '\n' <<<"${RPS[$s]}" | grep . | median)
    printf "proxy %-8s median %10.0f req/s   p99 %7.2f ms\n" "$s" "${MED[$s]}" "$(tr ' ' '\n' <<<"${P99[$s]}" | grep . | median)"
done
for s in "${SERVERS[@]}"; do
    [ "$s" = berth ] || awk -v a="${MED[berth]}" -v b="${MED[$s]}" -v s="$s" 'BEGIN {printf "proxy berth/%s = %.2f\n", s, a/b}'
done
