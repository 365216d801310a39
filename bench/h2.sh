#!/bin/bash
# HTTP/2 over TLS: berth's front (front-harness, 2 workers, access log on) against
# nginx (2 workers, `listen ... ssl http2`, sendfile, access log on) and H2O (2
# threads, access log on) when installed, as /work/shared/ANCHORS.md measured them:
# h2load -n $REQUESTS -c 32 -m 10 on a 1 KiB file over one self-signed ECDSA P-256
# certificate, TLS 1.3 with AES-128-GCM for all; servers interleaved A B C A B C for
# ROUNDS rounds; prints the median req/s of each and the ratios.
#
#   bench/h2.sh                (uses $BERTH_BUILD_DIR, default build-front-rel:
#                               meson setup build-front-rel --buildtype=release -Dtests=false)
#   ROUNDS=5 REQUESTS=200000 bench/h2.sh
#   FILES=100k.bin bench/h2.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
BUILD=${BERTH_BUILD_DIR:-$ROOT/build-front-rel}
HARNESS=$BUILD/src/front/front-harness
ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-200000}
CONNS=${CONNS:-32}
STREAMS=${STREAMS:-10}
[ -x "$HARNESS" ] || { echo "bench: build $HARNESS first" >&2; exit 1; }
command -v h2load >/dev/null || { echo "bench: h2load is needed (apt-get install nghttp2-client)" >&2; exit 1; }
NGINX=$(command -v nginx || true)
H2O=$(command -v h2o || true)

bench_tmpdir

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
make_tls_cert "$T"
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
    http2_max_requests 1000000;
    types { application/octet-stream bin; }
    server {
        listen 127.0.0.1:$NGINX_PORT ssl http2;
        server_name bench.localhost;
        ssl_certificate $TLS_CERT; ssl_certificate_key $TLS_KEY;
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
  ssl: {certificate-file: $TLS_CERT, key-file: $TLS_KEY}
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

# The same TLS 1.3 cipher for every server (see static.sh): h2load offers only
# AES-128-GCM.
cat > "$T/h2load-openssl.cnf" <<C
openssl_conf = conf
[conf]
ssl_conf = ssl
[ssl]
system_default = tls
[tls]
Ciphersuites = TLS_AES_128_GCM_SHA256
C
export OPENSSL_CONF=$T/h2load-openssl.cnf

# h2load_run PORT FILE N: one run; prints req/s. Failures go to stderr.
h2load_run() {
    local out
    out=$(h2load -n "$3" -c "$CONNS" -m "$STREAMS" -H ":authority: bench.localhost" "https://127.0.0.1:$1/$2")
    if ! grep -q "$3 succeeded, 0 failed, 0 errored" <<<"$out" || ! grep -q "status codes: $3 2xx" <<<"$out"; then
        echo "bench: errors against port $1:" >&2; echo "$out" >&2
    fi
    awk '/^finished in/ {print $4}' <<<"$out"
}

echo "machine: $(nproc) CPUs, $(uname -r); h2 over TLS, h2load -n $REQUESTS -c $CONNS -m $STREAMS, $ROUNDS rounds interleaved"
for file in ${FILES:-1k.bin}; do
    declare -A RPS=()
    for s in "${SERVERS[@]}"; do h2load_run "${PORT[$s]}" "$file" $((REQUESTS / 10)) >/dev/null; done   # warm-up
    for r in $(seq "$ROUNDS"); do
        for s in "${SERVERS[@]}"; do
            rps=$(h2load_run "${PORT[$s]}" "$file" "$REQUESTS")
            RPS[$s]+="$rps "
            echo "  round $r $file $s: $rps req/s"
        done
    done
    declare -A MED=()
    for s in "${SERVERS[@]}"; do
        MED[$s]=$(tr ' ' '\n' <<<"${RPS[$s]}" | grep . | median)
        printf "%-9s %-6s median %10.0f req/s\n" "$file" "$s" "${MED[$s]}"
    done
    for s in "${SERVERS[@]}"; do
        [ "$s" = berth ] && continue
        awk -v a="${MED[berth]}" -v b="${MED[$s]}" -v f="$file" -v s="$s" \
            'BEGIN {printf "%-9s berth/%s = %.2f\n", f, s, a/b}'
    done
    unset RPS MED
done
