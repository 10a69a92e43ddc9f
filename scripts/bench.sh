#!/usr/bin/env bash
# `make bench`: start an all-in-one `fdfs server` in a fresh directory and
# measure the rows of the performance table with `fdfs bench`, printed as a
# markdown table. BENCH_SECS sets the seconds per row (default 5); BENCH_KEEP=1
# keeps the servers' directories (see below).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
fdfs=${FDFS:-$repo/target/release/fdfs}
secs=${BENCH_SECS:-5}
work=$(mktemp -d "${TMPDIR:-/tmp}/fdfs-bench.XXXXXX")
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; pid=""; }
# BENCH_KEEP=1 leaves the servers' directories behind: deleting a few hundred
# thousand files slows file creation on ext4 for minutes, so runs back to
# back keep them and the disk is cleaned up afterwards.
if [ -n "${BENCH_KEEP:-}" ]; then
    trap 'cleanup; echo "bench: kept $work" >&2' EXIT
else
    trap 'cleanup; rm -rf "$work"' EXIT
fi

# Start a server in a new directory (never one just deleted: ext4 scans past
# recently freed inodes, which slows file creation). Without dedup unless
# asked (`start N dedup ...`): the other rows compare with C FastDFS, which
# has none built in.
start() {
    cleanup
    local dir="$work/server$1"; shift
    local dedup=--no-dedup
    if [ "${1:-}" = dedup ]; then dedup=""; shift; fi
    "$fdfs" server --dir "$dir" --tracker-port 0 --storage-port 0 $dedup "$@" >"$dir.out" 2>"$dir.err" &
    pid=$!
    for _ in $(seq 1 300); do
        [ "$(grep -c '^listening on' "$dir.out" 2>/dev/null || true)" -ge 2 ] && break
        sleep 0.1
    done
    tracker=$(sed -n 's/^listening on //p' "$dir.out" | head -1)
    # Write the freshly made directory tree out first, so the rows do not
    # measure its background writeback.
    sync
    for _ in $(seq 1 100); do
        "$fdfs" upload "$dir.out" --tracker "$tracker" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "bench: the server did not come up; see $dir.err" >&2
    exit 1
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
# Each row starts with no dirty data left by the previous one (writeback of a
# big row would otherwise throttle the next).
row() { sync; "$fdfs" bench --row --tracker "$tracker" "$@"; }

echo "fdfs $("$fdfs" --version | awk '{print $2}'), $(nproc) cores, $(date -u +%Y-%m-%d), ${secs}s per row"
echo
echo "| op | size | clients | ops/s | MB/s | p50 ms | p99 ms | max ms | errors |"
echo "|---|---|---|---|---|---|---|---|---|"
start 1
idle=$(rss_kb)
row --op upload --size 4K --clients 1 --duration "$secs"
row --op upload --size 4K --clients 8 --duration "$secs"
row --op download --size 4K --clients 1 --duration "$secs"
row --op download --size 4K --clients 8 --duration "$secs"
row --op upload --size 64K --clients 8 --duration "$secs"
row --op download --size 64K --clients 8 --duration "$secs"
row --op set-meta --clients 8 --duration "$secs"
row --op get-meta --clients 8 --duration "$secs"
row --op upload --size 256M --clients 1 --count 3
row --op download --size 256M --clients 1 --count 3
loaded=$(rss_kb)
start 2 --inline-reads
for spec in "download 4K 1" "download 4K 8" "download 64K 8" "get-meta 4K 8"; do
    set -- $spec
    row --op "$1" --size "$2" --clients "$3" --duration "$secs" | sed "s/^| \([a-z]*\) |/| \1 (inline reads) |/"
done
start 5 --no-inline-writes
row --op upload --size 4K --clients 8 --duration "$secs" | sed 's/^| upload |/| upload (disk threads) |/'
start 3 --durable
row --op upload --size 4K --clients 8 --duration "$secs" | sed 's/^| upload |/| upload (durable) |/'
row --op upload --size 4K --clients 1 --duration "$secs" | sed 's/^| upload |/| upload (durable) |/'
# Same content stored once (check_file_duplicate, on by default in `fdfs
# server`): new content each time with it off and on (the source and the link
# it costs; a new content is not hashed), then the same content again and
# again (a link, no file write). scripts/bench_dedup.sh, below, has the
# rounds and the server CPU.
start 6
row --op upload --size 64K --clients 8 --duration "$secs" | sed 's/^| upload |/| upload (dedup off) |/'
start 7 dedup
row --op upload --size 64K --clients 8 --duration "$secs" | sed 's/^| upload |/| upload (dedup on, new content) |/'
row --op upload --size 64K --clients 8 --duration "$secs" --same-content | sed 's/^| upload |/| upload (dedup on, same content) |/'
row --op upload --size 4K --clients 8 --duration "$secs" | sed 's/^| upload |/| upload (dedup on, new content) |/'
# The background scrub at its default rate (8 MB/s), restarted every second
# so that it reads all through the row, against none.
start 8 --scrub-interval 0
row --op upload --size 64K --clients 8 --duration "$secs" | sed 's/^| upload |/| upload (scrub off) |/'
start 9 --scrub-interval 1
row --op upload --size 64K --clients 8 --duration "$secs" | sed 's/^| upload |/| upload (scrub on, 8 MB\/s) |/'
cleanup
# What the disk allows durable uploads, without a server: a journal in the
# same filesystem, 8 committers in process and then behind loopback TCP.
sync
"$fdfs" bench --row --disk-commit "$work" --clients 8 --duration "$secs"
"$fdfs" bench --row --disk-commit "$work" --clients 8 --duration "$secs" --loopback
# Deletes last: on ext4 without a journal, file creation skips inodes freed
# in the last minutes, which would slow every row after this one.
start 4
row --op delete --size 4K --clients 8 --count 20000
cleanup
# The same with the file and binlog line a storage makes for an upload,
# after the deletes too: the probe removes its files when it ends.
sync
"$fdfs" bench --row --disk-commit "$work" --clients 8 --duration "$secs" --loopback --files
echo
echo "storage+tracker RSS: idle $((idle / 1024)) MB, after the runs $((loaded / 1024)) MB"

# What comparing two storages' trees costs (anti-entropy), on the wire and in time.
echo
bash "$repo/scripts/bench_repair.sh"

# What dedup costs an upload, in rotating rounds: on tmpfs, then on an ext4
# in memory (root only; says so when skipped).
echo
bash "$repo/scripts/bench_dedup.sh"
echo
DEDUP_FS=ext4 bash "$repo/scripts/bench_dedup.sh"

# HTTP downloads from the storage beside nginx serving the same files, same run.
echo
bash "$repo/scripts/bench_http.sh"

# The same kinds of rows against C FastDFS 6.16.1 in this run, both sides
# driven by upstream's client library (skipped, saying so, without ../shared/ref).
echo
bash "$repo/scripts/bench_vs_c.sh"
