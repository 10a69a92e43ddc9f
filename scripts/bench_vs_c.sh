#!/usr/bin/env bash
# Part of `make bench`: fdfs against upstream C FastDFS 6.16.1 in the same run,
# both driven by upstream's own client library (`fdfs_bench` from
# $FDFS_REF_DIR, default ../shared/ref), with and without its connection pool.
#
# Each side runs a tracker and a storage started from upstream's sample
# configs with the same settings (only addresses and directories differ), both
# kept running, on their own loopback addresses. For every row the side that
# goes first alternates. Server CPU per operation is the tracker's and the
# storage's user+system time (/proc/PID/stat) over the row, divided by the
# operations done. Prints a markdown table, then a second one of cold
# downloads (below).
#
# BENCH_SECS: seconds per row (default 5). BENCH_KEEP=1 keeps the directories.
# BENCH_COLD_64K / BENCH_COLD_1M: files per side for the cold rows (default
# 8000 / 1500); BENCH_COLD=0 skips those rows, BENCH_HOT=0 all the others.
# FDFS: the fdfs binary to compare (default target/release/fdfs).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
fdfs=${FDFS:-$repo/target/release/fdfs}
ref=${FDFS_REF_DIR:-$repo/../shared/ref}
secs=${BENCH_SECS:-5}
if [ ! -x "$ref/bin/fdfs_bench" ]; then
    echo "bench: upstream C FastDFS not found at $ref (set FDFS_REF_DIR): skipping the comparison with C" >&2
    exit 0
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/fdfs-vs-c.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
if [ -n "${BENCH_KEEP:-}" ]; then
    trap 'cleanup; echo "bench: kept $work" >&2' EXIT
else
    trap 'cleanup; rm -rf "$work"' EXIT
fi

tick=$(getconf CLK_TCK)
# conf SAMPLE OUT key=value...: upstream's sample with the keys replaced, the
# new values first (before any [section], where both daemons read them).
conf() {
    local sample=$1 out=$2; shift 2
    : >"$out"
    local keys=()
    for kv in "$@"; do echo "${kv%%=*} = ${kv#*=}" >>"$out"; keys+=("${kv%%=*}"); done
    awk -v keys="${keys[*]}" 'BEGIN { n = split(keys, k, " "); for (i = 1; i <= n; i++) skip[k[i]] = 1 }
        /^\[/ { global = 0 } NR == 1 { global = 1 }
        { key = $0; sub(/[ \t]*=.*/, "", key); gsub(/^[ \t]+/, "", key) }
        global && !/^#/ && (key in skip) { next } { print }' "$ref/etc/$sample" >>"$out"
}

# side NAME NET: a tracker on 127.0.NET.1 and a storage on 127.0.NET.2.
declare -A tracker_pid storage_pid client
side() {
    local name=$1 net=$2 dir="$work/$1"
    mkdir -p "$dir/tracker" "$dir/storage"
    conf tracker.conf "$dir/tracker.conf" "bind_addr=127.0.$net.1" "port=22122" \
        "base_path=$dir/tracker" "reserved_storage_space=1%"
    conf storage.conf "$dir/storage.conf" "bind_addr=127.0.$net.2" "port=23000" \
        "base_path=$dir/storage" "store_path0=$dir/storage" "tracker_server=127.0.$net.1:22122" \
        "heart_beat_interval=1" "stat_report_interval=1"
    for pool in false true; do
        printf 'connect_timeout = 5\nnetwork_timeout = 60\nbase_path = %s\ntracker_server = 127.0.%s.1:22122\nlog_level = warn\nuse_connection_pool = %s\nconnection_pool_max_idle_time = 3600\n' \
            "$dir" "$net" "$pool" >"$dir/client-$pool.conf"
    done
    if [ "$name" = c ]; then
        "$ref/bin/fdfs_trackerd" -N "$dir/tracker.conf" >"$dir/tracker.out" 2>&1 &
        tracker_pid[$name]=$!
        "$ref/bin/fdfs_storaged" -N "$dir/storage.conf" >"$dir/storage.out" 2>&1 &
        storage_pid[$name]=$!
    else
        "$fdfs" tracker -c "$dir/tracker.conf" >"$dir/tracker.out" 2>&1 &
        tracker_pid[$name]=$!
        "$fdfs" storage -c "$dir/storage.conf" >"$dir/storage.out" 2>&1 &
        storage_pid[$name]=$!
    fi
    pids+=("${tracker_pid[$name]}" "${storage_pid[$name]}")
    head -c 4096 /dev/urandom >"$dir/probe"
    for _ in $(seq 1 600); do
        "$fdfs" upload "$dir/probe" --tracker "127.0.$net.1:22122" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "bench: the $name servers did not come up; see $dir" >&2
    exit 1
}

cpu_ticks() { # NAME: tracker + storage user+system ticks
    local t=0 p
    for p in "${tracker_pid[$1]}" "${storage_pid[$1]}"; do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$t"
}

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

# run NAME POOL OP THREADS ARGS...: one fdfs_bench run; prints
# "ops_per_s p99_ms cpu_us fail mb_per_s"
run() {
    local name=$1 pool=$2 op=$3 threads=$4; shift 4
    sync
    local before after out
    before=$(cpu_ticks "$name")
    out=$("$ref/bin/fdfs_bench" -c "$work/$name/client-$pool.conf" -o "$op" -t "$threads" -q "$@" || true)
    after=$(cpu_ticks "$name")
    local ops; ops=$(echo "$out" | field ops)
    if [ -z "$ops" ] || [ "$ops" = 0 ]; then
        echo "0 - - $(echo "$out" | field fail) -"
        return
    fi
    awk -v o="$ops" -v r="$(echo "$out" | field ops_per_s)" -v p="$(echo "$out" | field p99_us)" \
        -v c=$((after - before)) -v hz="$tick" -v f="$(echo "$out" | field fail)" \
        -v mb="$(echo "$out" | field mb_per_s)" \
        'BEGIN { printf "%.0f %.2f %.1f %s %.1f\n", r, p / 1000, c * 1e6 / hz / o, f, mb * 1.048576 }'
}

rowno=0
# row LABEL POOL OP THREADS ARGS... ({dir} in ARGS: that side's directory)
row() {
    local label=$1 pool=$2 op=$3 threads=$4; shift 4
    local order=(fdfs c)
    [ $((rowno % 2)) = 1 ] && order=(c fdfs)
    rowno=$((rowno + 1))
    declare -A res
    local name
    for name in "${order[@]}"; do
        local args=("${@//\{dir\}/$work/$name}")
        res[$name]=$(run "$name" "$pool" "$op" "$threads" "${args[@]}")
    done
    read -r fo fp fc ff _ <<<"${res[fdfs]}"
    read -r co cp cc cf _ <<<"${res[c]}"
    local ratio="-"
    [ "$co" != 0 ] && ratio=$(awk -v a="$fo" -v b="$co" 'BEGIN { printf "%.2fx", a / b }')
    local cpur="-"
    [ "$fc" != "-" ] && [ "$cc" != "-" ] && cpur=$(awk -v a="$fc" -v b="$cc" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
    local pooled=no; [ "$pool" = true ] && pooled=yes
    echo "| $label | $threads | $pooled | $fo | $co | $ratio | $fp | $cp | $fc | $cc | $cpur | ${order[0]} | $ff / $cf |"
}

side fdfs 41
side c 42
echo "fdfs $("$fdfs" --version | awk '{print $2}') against C FastDFS 6.16.1, both driven by upstream's fdfs_bench, $(nproc) cores, $(date -u +%Y-%m-%d), ${secs}s per row"
echo
hot=${BENCH_HOT:-1}
[ "$hot" = 0 ] || echo "| op | clients | pool | fdfs ops/s | C ops/s | fdfs / C | fdfs p99 ms | C p99 ms | fdfs CPU µs/op | C CPU µs/op | CPU fdfs / C | first | failures fdfs / C |"
[ "$hot" = 0 ] || echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for pool in false true; do
    [ "$hot" = 0 ] && break
    # Uploads write the id files the later rows read (the 8-client row's ids
    # for the 4 KiB reads, the 64 KiB row's for the 64 KiB reads).
    row "upload 4K" "$pool" upload 1 -d "$secs" -s 4096
    row "upload 4K" "$pool" upload 8 -d "$secs" -s 4096 -w "{dir}/ids-$pool-4k"
    row "download 4K" "$pool" download 1 -d "$secs" -i "{dir}/ids-$pool-4k"
    row "download 4K" "$pool" download 8 -d "$secs" -i "{dir}/ids-$pool-4k"
    row "upload 64K" "$pool" upload 8 -d "$secs" -s 65536 -w "{dir}/ids-$pool-64k"
    row "download 64K" "$pool" download 8 -d "$secs" -i "{dir}/ids-$pool-64k"
    # Metadata rows on 2,000 files that all have metadata (upstream answers
    # ENOENT to get-meta of a file without any, fdfs too).
    for name in fdfs c; do
        head -n 2000 "$work/$name/ids-$pool-4k" >"$work/$name/ids-$pool-meta"
        "$ref/bin/fdfs_bench" -c "$work/$name/client-$pool.conf" -o set-meta -t 8 -d 0 -n 2000 -q \
            -i "$work/$name/ids-$pool-meta" >/dev/null
    done
    row "set-meta" "$pool" set-meta 8 -d "$secs" -i "{dir}/ids-$pool-meta"
    row "get-meta" "$pool" get-meta 8 -d "$secs" -i "{dir}/ids-$pool-meta"
done

# Cold downloads: every file read from the disk. Each side first uploads its
# files (8 clients, no pool; before the deletes, which slow file creation);
# before each run the page cache, dentries and inodes are dropped (both sides'
# files), and the run downloads every file once, so no read finds anything
# cached. The same files serve both pool settings (the caches are dropped
# again before each run). MB/s = 10^6 bytes/s.
drop_caches() { sync && echo 3 >/proc/sys/vm/drop_caches; }
cold=${BENCH_COLD:-1}
if [ "$cold" != 0 ] && ! drop_caches 2>/dev/null; then
    echo "bench: cannot drop the page cache (echo 3 > /proc/sys/vm/drop_caches needs root, outside a container): SKIPPING the cold download rows" >&2
    cold=skipped
fi
declare -A cold_n=([64k]="${BENCH_COLD_64K:-8000}" [1m]="${BENCH_COLD_1M:-1500}")
declare -A cold_size=([64k]=65536 [1m]=1048576)
if [ "$cold" = 1 ]; then
    for tag in 64k 1m; do
        for name in fdfs c; do
            "$ref/bin/fdfs_bench" -c "$work/$name/client-false.conf" -o upload -t 8 -d 0 \
                -n "${cold_n[$tag]}" -s "${cold_size[$tag]}" -q -w "$work/$name/ids-cold-$tag" >/dev/null || true
        done
        # Both sides download as many files, each once.
        a=$(cat "$work/fdfs/ids-cold-$tag" 2>/dev/null | wc -l)
        b=$(cat "$work/c/ids-cold-$tag" 2>/dev/null | wc -l)
        cold_n[$tag]=$((a < b ? a : b))
        if [ "${cold_n[$tag]}" = 0 ]; then
            echo "bench: the uploads for the cold rows failed: SKIPPING the cold download rows" >&2
            cold=skipped
        fi
    done
fi

# Deletes last: they slow later file creation on ext4 (see the README).
for pool in false true; do
    [ "$hot" = 0 ] && break
    row "delete 4K" "$pool" delete 8 -d 0 -n 10000 -i "{dir}/ids-$pool-4k"
done

cold_rowno=0
# cold_row LABEL POOL TAG: both sides download each of their TAG files once,
# from a dropped page cache.
cold_row() {
    local label=$1 pool=$2 tag=$3
    # Rows go 64K, 1M, 64K, 1M: each size has each side first once.
    local order=(fdfs c)
    [ $(((cold_rowno + cold_rowno / 2) % 2)) = 1 ] && order=(c fdfs)
    cold_rowno=$((cold_rowno + 1))
    declare -A res
    local name
    for name in "${order[@]}"; do
        drop_caches || echo "bench: dropping the page cache failed: this cold row may not be cold" >&2
        res[$name]=$(run "$name" "$pool" download 8 -d 0 -n "${cold_n[$tag]}" -i "$work/$name/ids-cold-$tag")
    done
    read -r fo fp fc ff fm <<<"${res[fdfs]}"
    read -r co cp cc cf cm <<<"${res[c]}"
    local ratio="-"
    [ "$co" != 0 ] && ratio=$(awk -v a="$fo" -v b="$co" 'BEGIN { printf "%.2fx", a / b }')
    local cpur="-"
    [ "$fc" != "-" ] && [ "$cc" != "-" ] && cpur=$(awk -v a="$fc" -v b="$cc" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
    local pooled=no; [ "$pool" = true ] && pooled=yes
    echo "| $label | 8 | $pooled | $fo | $co | $ratio | $fm | $cm | $fp | $cp | $fc | $cc | $cpur | ${order[0]} | $ff / $cf |"
}
echo
case "$cold" in
0) ;;
skipped) echo "Cold download rows SKIPPED (see the message above)." ;;
*)
    echo "Cold downloads, same run: page cache, dentries and inodes dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before each run, every file downloaded once (${cold_n[64k]} files of 64 KiB, ${cold_n[1m]} of 1 MiB per side); MB/s in 10^6 bytes/s"
    echo
    echo "| op | clients | pool | fdfs ops/s | C ops/s | fdfs / C | fdfs MB/s | C MB/s | fdfs p99 ms | C p99 ms | fdfs CPU µs/op | C CPU µs/op | CPU fdfs / C | first | failures fdfs / C |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for pool in false true; do
        cold_row "cold download 64K" "$pool" 64k
        cold_row "cold download 1M" "$pool" 1m
    done
    ;;
esac
