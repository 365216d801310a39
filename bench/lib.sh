# Shared by the bench/ scripts (sourced, not run).

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The median of the numbers on stdin, one per line.
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# wrk_run CONNS HOST URL: one wrk run (2 threads, $DURATION, keep-alive); prints
# "REQ_PER_S P99_MS". Errors (non-2xx, socket errors) are reported on stderr.
wrk_run() {
    local out
    out=$(wrk -t2 -c"$1" -d"$DURATION" --latency -H "Host: $2" "$3")
    if grep -q -E "Non-2xx|Socket errors" <<<"$out"; then
        echo "bench: errors against $3:" >&2; echo "$out" >&2
    fi
    echo "$(awk '/^Requests\/sec/ {print $2}' <<<"$out") $(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")"
}

# bench_tmpdir: makes the run's directory $T (searchable: the front's workers run as
# another user) and PIDS; on exit every pid in PIDS is stopped and $T removed
# (KEEP=1 keeps it for a look).
bench_tmpdir() {
    T=$(mktemp -d /tmp/berth-bench.XXXXXX)
    chmod 755 "$T"
    PIDS=()
    trap bench_cleanup EXIT
}
bench_cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    if [ -n "${KEEP:-}" ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}

# start_harness: berth's front ($HARNESS, 2 workers, access log on) on $T/routes;
# sets BERTH_PORT.
# With TLS_CERT and TLS_KEY set, BERTH_PORT is an HTTPS listener with them as its
# default certificate.
start_harness() {
    local listen=(--listen 127.0.0.1:0)
    [ -n "${TLS_CERT:-}" ] && listen=(--tls-listen 127.0.0.1:0 --tls-cert "$TLS_CERT" --tls-key "$TLS_KEY")
    "$HARNESS" "${listen[@]}" --routes "$T/routes" --port-file "$T/berth.port" --workers 2 \
        >"$T/berth.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do [ -s "$T/berth.port" ] && break; sleep 0.05; done
    BERTH_PORT=$(head -1 "$T/berth.port")
}

# make_tls_cert DIR: a self-signed ECDSA P-256 certificate for bench.localhost in
# DIR (readable by the front's user); sets TLS_CERT and TLS_KEY.
make_tls_cert() {
    TLS_CERT=$1/bench.pem TLS_KEY=$1/bench.key
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TLS_KEY" \
        -out "$TLS_CERT" -days 2 -subj /CN=bench.localhost -addext subjectAltName=DNS:bench.localhost 2>/dev/null
    chmod 644 "$TLS_CERT" "$TLS_KEY"
}

# nginx_conf_head DIR: how every benchmark nginx.conf starts (2 workers, pid and
# error log under DIR) up to the opening of http {.
nginx_conf_head() {
    cat <<N
worker_processes 2;
pid $1/nginx.pid;
error_log $1/logs/error.log;
events { worker_connections 4096; }
http {
N
}
