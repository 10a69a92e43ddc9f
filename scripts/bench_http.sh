#!/usr/bin/env bash
# HTTP downloads (issue #19's rows): 4 KiB and 64 KiB files, 8 keep-alive connections, from
# fdfs's own HTTP server and from nginx serving the very same files from the storage's data
# directory, in the same run with the same load generator (ApacheBench, `ab -k`), alternating
# which side goes first. The binary protocol's rows for the same sizes are in the main table.
# Installs nginx-light and apache2-utils with apt-get when missing (as root); says SKIPPED when it
# cannot. BENCH_SECS per row (default 5).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
fdfs=${FDFS:-$repo/target/release/fdfs}
secs=${BENCH_SECS:-5}
if ! command -v nginx >/dev/null || ! command -v ab >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get install -y -q nginx-light apache2-utils >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q nginx-light apache2-utils >/dev/null 2>&1; } || true
    fi
fi
if ! command -v nginx >/dev/null || ! command -v ab >/dev/null; then
    echo "HTTP rows SKIPPED: nginx or ab (apache2-utils) is not installed and could not be"
    exit 0
fi
nginx_bin=$(command -v nginx)
work=$(mktemp -d "${TMPDIR:-/tmp}/fdfs-bench-http.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

hport=$(port)
"$fdfs" server --dir "$work/fdfs" --tracker-port 0 --storage-port 0 --http-port "$hport" \
    --subdirs 16 --no-dedup >"$work/fdfs.out" 2>"$work/fdfs.err" &
pids+=($!)
for _ in $(seq 1 300); do
    [ "$(grep -c '^listening on' "$work/fdfs.out" 2>/dev/null || true)" -ge 2 ] && break
    sleep 0.1
done
tracker=$(sed -n 's/^listening on //p' "$work/fdfs.out" | head -1)
declare -A ids
for size in 4096 65536; do
    head -c "$size" /dev/urandom >"$work/f$size.bin"
    for _ in $(seq 1 100); do
        id=$("$fdfs" upload "$work/f$size.bin" --tracker "$tracker" 2>/dev/null) && break
        sleep 0.2
    done
    ids[$size]=$id
done

nport=$(port)
store="$work/fdfs/storage"
cat >"$work/nginx.conf" <<CONF
worker_processes 2;
# The store is in a private temp directory: the workers run as this user.
user $(id -un) $(id -gn);
error_log $work/nginx.err;
pid $work/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$nport;
        location ~ ^/group1/M00/(.*)\$ { alias $store/data/\$1; }
    }
}
CONF
"$nginx_bin" -c "$work/nginx.conf" -g 'daemon off;' &
pids+=($!)
sleep 0.5

# One row: ops/s (requests/s) and p99 from ab's percentile table.
measure() { # name url
    local out
    out=$(ab -q -k -c 8 -t "$secs" -n 100000000 "$2" 2>&1 || true)
    local rps p99 failed non2xx
    non2xx=$(awk '/^Non-2xx responses/ {print $3}' <<<"$out")
    if [ -n "$non2xx" ]; then
        echo "bench_http: $1 answered $non2xx non-2xx responses for $2" >&2
        exit 1
    fi
    rps=$(awk '/^Requests per second/ {print $4}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    failed=$(awk '/^Failed requests/ {print $3}' <<<"$out")
    echo "$1|$rps|$p99|$failed"
}

echo "HTTP downloads, 8 keep-alive connections, ab -k, ${secs}s per row, $(date -u +%Y-%m-%d):"
echo
echo "| file | server | requests/s | p99 ms | failed |"
echo "|---|---|---|---|---|"
for round in 1 2; do
    for size in 4096 65536; do
        id=${ids[$size]}
        fd="http://127.0.0.1:$hport/$id"
        ng="http://127.0.0.1:$nport/$id"
        # The storage listens on the address fdfs server binds (127.0.0.1 by default).
        if [ $((round % 2)) = 1 ]; then order="fdfs nginx"; else order="nginx fdfs"; fi
        for side in $order; do
            if [ "$side" = fdfs ]; then r=$(measure fdfs "$fd"); else r=$(measure nginx "$ng"); fi
            IFS='|' read -r name rps p99 failed <<<"$r"
            echo "| $((size / 1024)) KiB | $name (round $round) | $rps | $p99 | $failed |"
        done
    done
done
