#!/usr/bin/env bash
# The scale benchmark behind docs/performance.md: for each size, load the
# rows (4 writers, shuffled), close, reopen cold and run 200,000 gets (half
# for absent keys), then scans and a mixed run on the same database; on a
# local directory, and on the in-memory store with 20 ms per request.
# Prints one JSON line per run to stdout and a markdown table to stderr.
#
#   scripts/bench-scale.sh [KEYS...]      (default: 1000000 3000000 10000000)
#
# Needs a release build (cargo build --release) and about 3 GB of free disk
# and memory per 10M keys. Takes about 15 minutes for the default sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
talus=target/release/talus
sizes=("${@:-1000000 3000000 10000000}")
# shellcheck disable=SC2206
sizes=(${sizes[*]})
dir=$(mktemp -d "${TMPDIR:-/tmp}/talus-scale.XXXXXX")
trap 'rm -rf "$dir"' EXIT
out="$dir/runs.jsonl"

run() { # label, then talus arguments
    local label=$1
    shift
    "$talus" "$@" --json | python3 -c '
import json, sys
print(json.dumps({"label": sys.argv[1], **json.load(sys.stdin)}))' "$label" | tee -a "$out"
}

for keys in "${sizes[@]}"; do
    local_store="file://$dir/data-$keys"
    run "local get" --store "$local_store" bench --workload get --keys "$keys" \
        --ops 200000 --miss-ratio 0.5 --keep 2>"$dir/kept"
    path=$(sed -n 's/^kept the benchmark.s database at //p' "$dir/kept")
    run "local settled get" --store "$local_store" bench --workload get --keys "$keys" \
        --ops 200000 --miss-ratio 0.5 --existing "$path" 2>/dev/null
    run "local scan" --store "$local_store" bench --workload scan --keys "$keys" \
        --ops 20000 --existing "$path" 2>/dev/null
    run "local mixed" --store "$local_store" bench --workload mixed --keys "$keys" \
        --duration-s 10 --existing "$path" 2>/dev/null
    rm -rf "$dir/data-$keys"
    run "memory+20ms get" --store memory bench --workload get --keys "$keys" \
        --ops 20000 --readers 64 --miss-ratio 0.5 --latency-ms 20
done

python3 - "$out" >&2 <<'EOF'
import json, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
mib = lambda b: f"{b / 2**20:,.0f}"
print("| keys | run | load puts/s | ops/s | p50 / p99 µs | p99 µs compacting / not | requests/op¹ | bytes read/op | L0 + runs | store GB at rest (live) | write amp | space amp | metadata MiB | block cache MiB | peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
load = {}
for run in runs:
    work = {w["workload"]: w for w in run["workloads"]}
    fill = work.get("fill")
    if fill:
        load[(run["keys"], run["store"])] = fill["ops_per_s"]
    w = [w for w in run["workloads"] if w["workload"] != "fill"][-1]
    lat = w.get("latency_us", {})
    during = w.get("latency_us_compacting", {}).get("p99", "–")
    quiet = w.get("latency_us_not_compacting", lat).get("p99", "–")
    reads = w.get("reads_per_lookup", w.get("reads_per_scan", w.get("requests_per_op", 0)))
    bytes_read = w.get("bytes_read_per_lookup", w.get("bytes_read_per_scan"))
    shape = w.get("shape", {})
    store = run.get("store_after") or {}
    mem = w.get("memory", {})
    print(f"| {run['keys']:,} | {run['label']} | {load.get((run['keys'], run['store']), 0):,.0f} | {w['ops_per_s']:,.0f} "
          f"| {lat.get('p50')} / {lat.get('p99')} | {during} / {quiet} | {reads:.3f} "
          f"| {'–' if bytes_read is None else f'{bytes_read:,.0f}'} "
          f"| {shape.get('l0_tables')} + {shape.get('sorted_runs')} "
          f"| {store.get('bytes_at_rest', 0) / 1e9:.2f} ({store.get('live_table_bytes', 0) / 1e9:.2f}) "
          + (f"| {store.get('write_amplification', 0):.2f} | {store.get('space_amplification', 0):.2f} " if fill else "| – | – ")
          + f"
          f"| {mib(mem.get('metadata_bytes', 0))} | {mib(mem.get('block_cache_bytes', 0))} "
          f"| {mib(run.get('peak_rss_bytes') or 0)} |")
EOF
