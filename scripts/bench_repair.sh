#!/usr/bin/env bash
# What anti-entropy costs: a tracker and two storages of one group that hold
# the same REPAIR_FILES (default 200000) empty files, made directly in their
# 256x256 trees with valid FastDFS names, then `fdfs repair --quick`: the
# bytes of digests exchanged and the seconds taken while the group agrees;
# then again after 1000 files are removed from one storage (which copies
# them back). Part of `make bench`; REPAIR_FILES=1000000 for the figure in
# the README. Prints a markdown table.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
fdfs="$repo/target/release/fdfs"
n=${REPAIR_FILES:-200000}
work=$(mktemp -d "${TMPDIR:-/tmp}/fdfs-bench-repair.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

listening() { # file -> the address a daemon printed
    for _ in $(seq 1 600); do
        a=$(sed -n 's/^listening on //p' "$1" | head -1)
        [ -n "$a" ] && { echo "$a"; return 0; }
        sleep 0.1
    done
    echo "bench_repair: no address in $1" >&2
    exit 1
}

mkdir -p "$work/t"
cat >"$work/t.conf" <<EOF
base_path = $work/t
bind_addr = 127.0.0.1
port = 0
EOF
"$fdfs" tracker -c "$work/t.conf" >"$work/t.out" 2>"$work/t.err" &
pids+=($!)
tracker=$(listening "$work/t.out")

# The same files in both trees (before the storages first start).
for s in 2 3; do
    mkdir -p "$work/s$s"
done
python3 - "$n" "$work/s2" "$work/s3" <<'EOF'
import base64, os, struct, sys, time
n, roots = int(sys.argv[1]), sys.argv[2:]
ts = int(time.time()) - 3600
ip = bytes([127, 0, 0, 2])
for root in roots:
    for h in range(256):
        for l in range(256):
            os.makedirs(f"{root}/data/{h:02X}/{l:02X}", exist_ok=True)
for i in range(n):
    size_field = ((0x80000000 | (i & 0x7FFFFF)) << 32) | 0
    raw = ip + struct.pack(">IQI", ts - i // 0x800000, size_field, 0)
    name = base64.urlsafe_b64encode(raw).decode()[:27] + "000.bin"
    d = f"data/{i % 256:02X}/{(i // 256) % 256:02X}/{name}"
    for root in roots:
        os.close(os.open(f"{root}/{d}", os.O_CREAT | os.O_WRONLY, 0o644))
EOF

for s in 2 3; do
    cat >"$work/s$s.conf" <<EOF
group_name = group1
bind_addr = 127.0.0.$s
port = 0
base_path = $work/s$s
store_path0 = $work/s$s
subdir_count_per_path = 256
tracker_server = $tracker
heart_beat_interval = 1
stat_report_interval = 1
repair_min_age = 0
EOF
    "$fdfs" storage -c "$work/s$s.conf" >"$work/s$s.out" 2>"$work/s$s.err" &
    pids+=($!)
    listening "$work/s$s.out" >/dev/null
done
for _ in $(seq 1 600); do
    active=$("$fdfs" monitor --json --tracker "$tracker" 2>/dev/null |
        python3 -c 'import json,sys; v=json.load(sys.stdin); print(sum(s["status"]=="ACTIVE" for g in v["groups"] for s in g["storages"]))' || echo 0)
    [ "$active" = 2 ] && break
    sleep 0.2
done
# The storages learn that their peer is ACTIVE at their next heartbeat (1 s).
sleep 3

row() { # label
    "$fdfs" repair group1 --quick --json --tracker "$tracker" | python3 -c '
import json, sys
label = sys.argv[1]
keys = ("storage", "dirs_compared", "dirs_differing", "digest_bytes", "repaired")
for line in sys.stdin:
    r = json.loads(line)
    cells = [label] + [str(r[k]) for k in keys] + ["%.1f" % r["seconds"]]
    print("| " + " | ".join(cells) + " |")
' "$1"
}

echo "Anti-entropy over $n files per storage (two storages, 256x256 directories), page cache warm:"
echo
echo "| state | storage | directories compared | differing | digest bytes | repaired | seconds |"
echo "|---|---|---|---|---|---|---|"
row "in agreement"
find "$work/s3/data" -name '*.bin' | shuf -n 1000 --random-source=<(yes) | xargs rm -f
row "1000 files gone on one"
row "in agreement again"
