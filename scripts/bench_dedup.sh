#!/usr/bin/env bash
# What dedup (check_file_duplicate) costs an upload: 64 KiB uploads of new
# content with dedup off and on, and of one content again and again, each row
# on a fresh `fdfs server` in a fresh directory, ROUNDS rounds (default 3) in
# rotating order; the median row of each is printed with the server's CPU
# time per upload.
#
# Where: DEDUP_FS=tmpfs (the default) puts the servers on /dev/shm, where a
# file costs only the kernel's bookkeeping; DEDUP_FS=ext4 makes a fresh ext4
# for every row on a loop device backed by /dev/shm (root only): ext4's own
# cost of an inode and a directory entry, without a disk's latency in the
# way; DEDUP_MNT names its mount point (default under /tmp): a short one such
# as /e gives link targets of at most 59 bytes, which ext4 keeps in the inode
# (a "fast" symlink) instead of a block of its own. DEDUP_FS=DIR uses DIR as
# it is.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
fdfs=${FDFS:-$repo/target/release/fdfs}
secs=${BENCH_SECS:-5}
rounds=${ROUNDS:-3}
fs=${DEDUP_FS:-tmpfs}
clients_list=${DEDUP_CLIENTS:-8 1}
pid=""
mnt=""
img=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    wait 2>/dev/null || true
    pid=""
    if [ -n "$mnt" ]; then
        umount "$mnt" 2>/dev/null || true
        rm -f "$img"
        [ -z "${DEDUP_MNT:-}" ] && rmdir "$mnt" 2>/dev/null
    fi
    return 0
}
trap cleanup EXIT

if [ "$fs" = ext4 ]; then
    if [ "$(id -u)" != 0 ] || ! command -v mkfs.ext4 >/dev/null; then
        echo "bench_dedup: DEDUP_FS=ext4 needs root and mkfs.ext4; skipped" >&2
        exit 0
    fi
    mnt=${DEDUP_MNT:-$(mktemp -d /tmp/fdfs-dedup-mnt.XXXXXX)}
    mkdir -p "$mnt"
    img=/dev/shm/fdfs-dedup-ext4.img
fi

# A fresh place for one server.
place() {
    case "$fs" in
        tmpfs) mktemp -d /dev/shm/fdfs-dedup.XXXXXX ;;
        ext4)
            umount "$mnt" 2>/dev/null || true
            rm -f "$img"
            truncate -s 12G "$img"
            mkfs.ext4 -q -F "$img"
            mount -o loop "$img" "$mnt"
            echo "$mnt"
            ;;
        *) mktemp -d "$fs/fdfs-dedup.XXXXXX" ;;
    esac
}

# One row: `row MODE CLIENTS` prints "ops/s cpu_us/op p50 p99".
row() {
    local mode=$1 clients=$2 flag="" extra=""
    [ "$mode" = off ] && flag=--no-dedup
    [ "$mode" = same ] && extra=--same-content
    local dir
    dir=$(place)
    "$fdfs" server --dir "$dir/s" --tracker-port 0 --storage-port 0 --subdirs 16 $flag \
        >"$dir/out" 2>"$dir/err" &
    pid=$!
    for _ in $(seq 1 300); do
        [ "$(grep -c '^listening on' "$dir/out" 2>/dev/null || true)" -ge 2 ] && break
        sleep 0.1
    done
    local tracker
    tracker=$(sed -n 's/^listening on //p' "$dir/out" | head -1)
    for _ in $(seq 1 100); do
        "$fdfs" upload "$dir/out" --tracker "$tracker" >/dev/null 2>&1 && break
        sleep 0.1
    done
    sync
    local t0 t1 out
    t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    out=$("$fdfs" bench --row --tracker "$tracker" --op upload --size 64K \
        --clients "$clients" --duration "$secs" $extra)
    t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
    # The length of a link's target, when dedup made one.
    local link
    link=$(find "$dir/s" -type l -name '*.bin' -print -quit)
    [ -n "$link" ] && readlink "$link" | tr -d '\n' | wc -c >"$lens"
    [ "$fs" = ext4 ] || rm -rf "$dir"
    # | op | size | clients | ops/s | MB/s | p50 | p99 | max | errors |
    echo "$out" | awk -F'|' -v t=$((t1 - t0)) -v s="$secs" -v hz="$(getconf CLK_TCK)" '{
        gsub(/ /, "", $5); gsub(/ /, "", $7); gsub(/ /, "", $8)
        printf "%d %.0f %s %s\n", $5, t * 1e6 / hz / ($5 * s), $7, $8 }'
}

lens=$(mktemp)
median() { sort -n | awk '{a[NR] = $0} END {print a[int((NR + 1) / 2)]}'; }

echo "dedup cost, 64 KiB uploads, $fs, ${secs}s rows, median of $rounds rounds (fdfs $("$fdfs" --version | awk '{print $2}'), $(nproc) cores)"
echo
echo "| clients | dedup | ops/s | vs off | server CPU µs/op | p50 ms | p99 ms |"
echo "|---|---|---|---|---|---|---|"
for clients in $clients_list; do
    declare -A rows=()
    modes=(off on same)
    for r in $(seq 1 "$rounds"); do
        # Rotate who goes first.
        for k in 0 1 2; do
            m=${modes[$(((k + r) % 3))]}
            rows[$m]+="$(row "$m" "$clients")"$'\n'
        done
    done
    off_ops=$(printf '%s' "${rows[off]}" | median | awk '{print $1}')
    for m in off on same; do
        med=$(printf '%s' "${rows[$m]}" | median)
        set -- $med
        label=$m
        [ "$m" = on ] && label="on, new content"
        [ "$m" = same ] && label="on, same content"
        printf '| %s | %s | %s | %.2fx | %s | %s | %s |\n' "$clients" "$label" "$1" \
            "$(echo "$1 / $off_ops" | bc -l)" "$2" "$3" "$4"
    done
    unset rows
done
[ -s "$lens" ] && echo && echo "link targets: $(cat "$lens") bytes"
rm -f "$lens"
