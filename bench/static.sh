#!/bin/bash
# Static-file benchmark: berth's front (front-harness, 2 workers, access log on)
# against nginx (2 workers, sendfile, tcp_nopush, tcp_nodelay, keepalive_requests
# 100000, access log on) and H2O (2 threads, access log on) when installed.
# wrk -t2 -c64 on a 1 KiB and a 100 KiB file, servers interleaved A B C A B C for
# ROUNDS rounds; prints the median req/s and p99 of each and the ratios.
#
#   bench/static.sh            (uses $BERTH_BUILD_DIR, default build-front-rel:
#                               meson setup build-front-rel --buildtype=release -Dtests=false)
#   ROUNDS=5 DURATION=10s bench/static.sh
#   FILES=100k.bin bench/static.sh   (one case only)
#   TLS=1 bench/static.sh      (HTTPS: one self-signed ECDSA P-256 certificate for
#                               all three servers, TLS 1.3 with AES-128-GCM for all)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
BUILD=${BERTH_BUILD_DIR:-$ROOT/build-front-rel}
HARNESS=$BUILD/src/front/front-harness
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-64}
[ -x "$HARNESS" ] || { echo "bench: build $HARNESS first" >&2; exit 1; }
command -v wrk >/dev/null || { echo "bench: wrk is needed (apt-get install wrk)" >&2; exit 1; }
NGINX=$(command -v nginx || true)
H2O=$(command -v h2o || true)

bench_tmpdir

# Site layout as berthd makes it; the front's workers read through their group.
FRONT_UID=${FRONT_UID:-199999}
mkdir -p "$T/sites/bench/public" "$T/sites/bench/logs" "$T/nginx/logs" "$T/h2o"
head -c 1024 /dev/urandom > "$T/sites/bench/public/1k.bin"
head -c 102400 /dev/urandom > "$T/sites/bench/public/100k.bin"
if [ "$(id -u)" = 0 ]; then
    chown -R 1001:$FRONT_UID "$T/sites/bench/public"; chmod -R g+rX "$T/sites/bench/public"
    chown $FRONT_UID:1001 "$T/sites/bench/logs"; chmod 750 "$T/sites/bench/logs"
    chmod 755 "$T/sites" "$T/sites/bench"
fi
cat > "$T/routes" <<R
name=bench type=static public=$T/sites/bench/public logs=$T/sites/bench/logs uid=1001 hosts=bench.localhost
R
SCHEME=http NGINX_SSL="" NGINX_TLS="" H2O_TLS=""
if [ -n "${TLS:-}" ]; then
    make_tls_cert "$T"
    SCHEME=https NGINX_SSL=" ssl"
    NGINX_TLS="ssl_certificate $TLS_CERT; ssl_certificate_key $TLS_KEY;"
    H2O_TLS="  ssl: {certificate-file: $TLS_CERT, key-file: $TLS_KEY}"
fi

start_harness

SERVERS=(berth)
declare -A PORT=([berth]=$BERTH_PORT)

if [ -n "$NGINX" ]; then
    NGINX_PORT=$(free_port)
    nginx_conf_head "$T/nginx" > "$T/nginx/nginx.conf"
    cat >> "$T/nginx/nginx.conf" <<N
    access_log $T/nginx/logs/access.log;
    sendfile on; tcp_nopush on; tcp_nodelay on;
    keepalive_requests 100000;
    types { application/octet-stream bin; }
    server {
        listen 127.0.0.1:$NGINX_PORT$NGINX_SSL;
        server_name bench.localhost;
        $NGINX_TLS
        root $T/sites/bench/public;
    }
}
N
    "$NGINX" -p "$T/nginx" -c "$T/nginx/nginx.conf" -g 'daemon off;' 2>"$T/nginx/stderr" &
    PIDS+=($!)
    SERVERS+=(nginx)
    PORT[nginx]=$NGINX_PORT
fi
if [ -n "$H2O" ]; then
    H2O_PORT=$(free_port)
    cat > "$T/h2o/h2o.conf" <<H
num-threads: 2
listen:
  host: 127.0.0.1
  port: $H2O_PORT
$H2O_TLS
access-log: $T/h2o/access.log
hosts:
  "bench.localhost":
    paths:
      /:
        file.dir: $T/sites/bench/public
H
    "$H2O" -c "$T/h2o/h2o.conf" >"$T/h2o/stderr" 2>&1 &
    PIDS+=($!)
    SERVERS+=(h2o)
    PORT[h2o]=$H2O_PORT
fi
sleep 1

if [ -n "${TLS:-}" ]; then
    # The servers pick different TLS 1.3 ciphers by default (berth AES-128-GCM, nginx
    # and H2O follow the client's AES-256 first): wrk offers AES-128-GCM only, so all
    # three do the same work per byte. Set after the servers started: wrk only.
    cat > "$T/wrk-openssl.cnf" <<C
openssl_conf = conf
[conf]
ssl_conf = ssl
[ssl]
system_default = tls
[tls]
Ciphersuites = TLS_AES_128_GCM_SHA256
C
    export OPENSSL_CONF=$T/wrk-openssl.cnf
fi
run() { wrk_run "$CONNS" bench.localhost "$SCHEME://127.0.0.1:$1/$2"; }   # $1 port, $2 file


echo "machine: $(nproc) CPUs, $(uname -r); $SCHEME, wrk -t2 -c$CONNS -d$DURATION, $ROUNDS rounds interleaved"
for file in ${FILES:-1k.bin 100k.bin}; do
    declare -A RPS=() P99=()
    for s in "${SERVERS[@]}"; do run "${PORT[$s]}" "$file" >/dev/null; done   # warm-up
    for r in $(seq "$ROUNDS"); do
        for s in "${SERVERS[@]}"; do
            read -r rps p99 < <(run "${PORT[$s]}" "$file")
            RPS[$s]+="$rps "; P99[$s]+="$p99 "
            echo "  round $r $file $s: $rps req/s, p99 ${p99} ms"
        done
    done
    declare -A MED=()
    for s in "${SERVERS[@]}"; do
        MED[$s]=$(tr ' ' '\n' <<<"${RPS[$s]}" | grep . | median)
        MP=$(tr ' ' '\n' <<<"${P99[$s]}" | grep . | median)
        printf "%-9s %-6s median %10.0f req/s   p99 %7.2f ms\n" "$file" "$s" "${MED[$s]}" "$MP"
    done
    for s in "${SERVERS[@]}"; do
        [ "$s" = berth ] && continue
        awk -v a="${MED[berth]}" -v b="${MED[$s]}" -v f="$file" -v s="$s" \
            'BEGIN {printf "%-9s berth/%s = %.2f\n", f, s, a/b}'
    done
    unset RPS P99 MED
done
