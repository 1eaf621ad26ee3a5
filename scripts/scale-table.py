"""The markdown table of docs/performance.md from the JSON lines that
scripts/bench-scale.sh prints (one `talus bench --json` object per line,
with a "label")."""
import json
import sys


def mib(count):
    return f"{count / 2**20:,.0f}"


def row(run, load):
    work = [w for w in run["workloads"] if w["workload"] != "fill"][-1]
    fill = run.get("load") or next((w for w in run["workloads"] if w["workload"] == "fill"), None)
    lat = work.get("latency_us", {})
    during = work.get("latency_us_compacting", {}).get("p99", "–")
    quiet = work.get("latency_us_not_compacting", lat).get("p99", "–")
    per_op = work.get("reads_per_lookup", work.get("reads_per_scan", work.get("requests_per_op", 0)))
    bytes_read = work.get("bytes_read_per_lookup", work.get("bytes_read_per_scan"))
    shape = work.get("shape", {})
    store = run.get("store_after") or {}
    memory = work.get("memory", {})
    amp = "– | –"
    if fill:
        amp = f"{store.get('write_amplification', 0):.2f} | {store.get('space_amplification', 0):.2f}"
    cells = [
        f"{run['keys']:,}",
        run["label"],
        f"{load.get((run['keys'], run['store']), 0):,.0f}",
        f"{work['ops_per_s']:,.0f}",
        f"{lat.get('p50')} / {lat.get('p99')}",
        f"{during} / {quiet}",
        f"{per_op:.3f}",
        "–" if bytes_read is None else f"{bytes_read:,.0f}",
        f"{shape.get('l0_tables')} + {shape.get('sorted_runs')}",
        f"{store.get('bytes_at_rest', 0) / 1e9:.2f} ({store.get('live_table_bytes', 0) / 1e9:.2f})",
        amp,
        mib(memory.get("metadata_bytes", 0)),
        mib(memory.get("block_cache_bytes", 0)),
        mib(run.get("peak_rss_bytes") or 0),
    ]
    return "| " + " | ".join(cells) + " |"


def main(path):
    runs = [json.loads(line) for line in open(path) if line.strip()]
    load = {}
    for run in runs:
        for work in [run.get("load")] + run["workloads"]:
            if work and work["workload"] == "fill":
                load[(run["keys"], run["store"])] = work["ops_per_s"]
    print(
        "| keys | run | load puts/s | ops/s | p50 / p99 µs | p99 µs compacting / not "
        "| requests/op | bytes read/op | L0 + runs | GB at rest (live) | write amp | space amp "
        "| metadata MiB | block cache MiB | peak RSS MiB |"
    )
    print("|" + "---|" * 15)
    for run in runs:
        print(row(run, load))


main(sys.argv[1])
