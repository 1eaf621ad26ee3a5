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
        --ops 200000 --miss-ratio 0.5 --existing "$path" --settle 2>/dev/null
    run "local scan" --store "$local_store" bench --workload scan --keys "$keys" \
        --ops 20000 --existing "$path" 2>/dev/null
    run "local mixed" --store "$local_store" bench --workload mixed --keys "$keys" \
        --duration-s 10 --existing "$path" 2>/dev/null
    rm -rf "$dir/data-$keys"
    run "memory+20ms get" --store memory bench --workload get --keys "$keys" \
        --ops 20000 --readers 64 --miss-ratio 0.5 --latency-ms 20
done

python3 scripts/scale-table.py "$out" >&2
