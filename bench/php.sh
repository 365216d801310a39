#!/bin/bash
# PHP benchmark: a hello-world script and a generated 20 KiB page, through berth's
# front (php site, 2 workers, access log on) to php-fpm, and through nginx
# (worker_processes 2, fastcgi_pass to a unix socket, access log on) to its own
# php-fpm pool. Both pools run the configuration berthd generates
# (tests/helpers/php-fpm-config) with the same settings: pm static, 4 children,
# opcache on, a unix socket handed over as fd 3, chroot so that scripts live at
# /site/public as in a sandbox. wrk -t2 -c32, interleaved rounds, medians, ratio.
#   bench/php.sh     (uses $BERTH_BUILD_DIR, default build-front-rel; needs root for
#                     php-fpm's chroot, nginx, wrk, php8.2-fpm)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
BUILD=${BERTH_BUILD_DIR:-$ROOT/build-front-rel}
HARNESS=$BUILD/src/front/front-harness
FPMCONF=$BUILD/tests/helpers/php-fpm-config
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-32}
NGINX=$(command -v nginx || true)
PHP_FPM=/usr/sbin/php-fpm8.2
[ -x "$HARNESS" ] || { echo "bench: build $HARNESS first" >&2; exit 1; }
[ -x "$FPMCONF" ] || { echo "bench: build $FPMCONF first (meson -Dtests=true)" >&2; exit 1; }
[ -n "$NGINX" ] || { echo "bench: nginx is needed (./scripts/bootstrap.sh --bench)" >&2; exit 1; }
[ -x "$PHP_FPM" ] || { echo "bench: $PHP_FPM is needed" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench: php-fpm's chroot needs root" >&2; exit 1; }

bench_tmpdir

FRONT_UID=${FRONT_UID:-199999}
SITE_UID=2302

# One chroot per pool, each holding the site at /site (public, tmp) as a sandbox does.
make_site() {   # $1: chroot dir
    mkdir -p "$1/site/public" "$1/site/logs" "$1/site/tmp/sessions" "$1/site/tmp/uploads"
    echo '<?php echo "Hello, world!\n";' > "$1/site/public/hello.php"
    cat > "$1/site/public/page.php" <<'P'
<?php
/* A generated page of about 20 KiB: a loop, escaping, string building. */
$rows = [];
for ($i = 0; $i < 200; $i++) {
    $rows[] = '<tr><td>' . $i . '</td><td>' . htmlspecialchars("item <$i> & co") . '</td><td>'
            . number_format($i * 1234.5, 2) . '</td></tr>';
}
echo "<!DOCTYPE html>\n<html><head><title>page</title></head><body><table>\n",
     implode("\n", $rows), "\n</table></body></html>\n";
P
    chown -R $SITE_UID:$SITE_UID "$1/site/public" "$1/site/tmp"
    chown $FRONT_UID "$1/site/logs"
    chmod 755 "$1" "$1/site" "$1/site/public"
}

# php-fpm with berthd's config, the socket bound here and passed as fd 3.
start_fpm() {   # $1: dir (chroot), $2: pool name
    local conf=$1/php-fpm.conf
    "$FPMCONF" "$2" 0 '{"pm":"static","pm.max_children":"4"}' |
        sed -e "s|^pid = .*|pid = $1/php-fpm.pid|" \
            -e "s|^\[$2\]\$|[$2]\nchroot = $1\nuser = $SITE_UID\ngroup = $SITE_UID|" > "$conf"
    python3 - "$1/php.sock" "$PHP_FPM" "$conf" "$1/fpm.log" <<'PY' &
import os, socket, sys
path, fpm, conf, log = sys.argv[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o777)
s.listen(1024)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.dup2(fd, 1)
os.dup2(fd, 2)
os.execve(fpm, [fpm, "-R", "-F", "-y", conf],
          {"FPM_SOCKETS": "/run/berth/php-fpm.sock=3", "PATH": "/usr/bin:/bin"})
PY
    PIDS+=($!)
    for _ in $(seq 200); do grep -q "ready to handle" "$1/fpm.log" 2>/dev/null && return; sleep 0.05; done
    echo "bench: php-fpm did not start in $1" >&2; cat "$1/fpm.log" >&2; exit 1
}

make_site "$T/b"
make_site "$T/n"
start_fpm "$T/b" berth
start_fpm "$T/n" nginx

echo "name=site type=php public=$T/b/site/public logs=$T/b/site/logs uid=$SITE_UID backend=$T/b/php.sock hosts=php.localhost" > "$T/routes"
start_harness
SERVERS=(berth)
declare -A PORT=([berth]=$BERTH_PORT)

NGINX_PORT=$(free_port)
mkdir -p "$T/nx/logs"
nginx_conf_head "$T/nx" > "$T/nx/nginx.conf"
cat >> "$T/nx/nginx.conf" <<N
    access_log $T/nx/logs/access.log;
    tcp_nodelay on;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $T/n/site/public;
        location ~ \.php\$ {
            include /etc/nginx/fastcgi_params;
            fastcgi_param DOCUMENT_ROOT /site/public;
            fastcgi_param SCRIPT_FILENAME /site/public\$fastcgi_script_name;
            fastcgi_pass unix:$T/n/php.sock;
        }
    }
}
N
"$NGINX" -p "$T/nx" -c "$T/nx/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
SERVERS+=(nginx); PORT[nginx]=$NGINX_PORT
sleep 1
for s in "${SERVERS[@]}"; do
    for p in hello.php page.php; do
        curl -sf -H 'Host: php.localhost' "http://127.0.0.1:${PORT[$s]}/$p" >/dev/null ||
            { echo "bench: $s does not serve /$p" >&2; exit 1; }
    done
done

run() { wrk_run "$CONNS" php.localhost "http://127.0.0.1:$1/$2"; }   # $1 port, $2 path

echo "machine: $(nproc) CPUs, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); php-fpm pm static 4 per server;"
echo "wrk -t2 -c$CONNS -d$DURATION, $ROUNDS rounds interleaved"
for page in hello.php page.php; do
    declare -A RPS=() P99=() MED=()
    for s in "${SERVERS[@]}"; do run "${PORT[$s]}" "$page" >/dev/null; done
    for r in $(seq "$ROUNDS"); do
        for s in "${SERVERS[@]}"; do
            read -r rps p99 < <(run "${PORT[$s]}" "$page")
            RPS[$s]+="$rps "; P99[$s]+="$p99 "
            echo "  $page round $r $s: $rps req/s, p99 $p99 ms"
        done
    done
    for s in "${SERVERS[@]}"; do
        MED[$s]=$(tr ' ' '\n' <<<"${RPS[$s]}" | grep . | median)
        printf "php %-9s %-6s median %9.0f req/s   p99 %7.2f ms\n" "$page" "$s" "${MED[$s]}" \
            "$(tr ' ' '\n' <<<"${P99[$s]}" | grep . | median)"
    done
    awk -v a="${MED[berth]}" -v b="${MED[nginx]}" -v p="$page" 'BEGIN {printf "php %s berth/nginx = %.2f\n", p, a/b}'
    unset RPS P99 MED
done
