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
