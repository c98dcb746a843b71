#!/usr/bin/env python3
"""Reads the RESULT lines of a bench/queue.sh log and prints markdown: Spine beside graphile-worker
(best preset) per scenario with the ratio, the raw-SQL ceiling, and the commit-rate probe taken just
before each figure; then the issue's targets and the burn-down cost per 1,000 jobs.

Usage: bench/summarize.py [LOG]   (default: the newest /tmp/spine-bench/queue-*.log)
"""
import glob
import json
import os
import statistics
import sys

ORDER = ["enqueue-single inflight=1", "enqueue-single inflight=16", "enqueue-batch", "burn-down",
         "burn-down batch=2000", "latency",
         "latency-load rate=200", "latency-load rate=500"]


def key(r):
    """(scenario, variant) of a result, or None when it is not part of the comparison."""
    cmd = r.get("cmd")
    peer = r.get("peer", "")
    if cmd == "enqueue-single":
        return f"enqueue-single inflight={r.get('inflight')}", None
    if cmd == "enqueue-batch":
        return "enqueue-batch", None
    if cmd == "latency":
        return "latency", None
    if cmd == "latency-load":
        return f"latency-load rate={r.get('targetRate')}", None
    if cmd == "process":
        # Both sides taking 2,000 jobs at a time (graphile-worker's local queue, Spine's claim
        # batch) are compared with each other, apart from the 500-job preset.
        if peer == "graphile-worker":
            if r.get("localQueue", -1) == 2000:
                return "burn-down batch=2000", None
            preset = r.get("localQueue", -1) > 0
            return "burn-down", None if preset else f"c={r.get('concurrency')} per-job"
        if peer == "spine":
            scenario = "burn-down batch=2000" if r.get("claimBatch") == 2000 else "burn-down"
            return scenario, f"c={r.get('concurrency')}, claim batch {r.get('claimBatch')}"
        if peer.startswith("raw-sql"):
            return "burn-down", None if r.get("claimBatch") == 100 else f"claim {r.get('claimBatch')}"
    return None


def is_latency(scenario):
    return scenario.startswith("latency")


def fmt_value(r):
    if "latencyMs" in r:
        l = r["latencyMs"]
        s = f"{l['p50']} / {l['p99']} ms"
        if "achievedEnqueueRate" in r and r["achievedEnqueueRate"] < 0.98 * r.get("targetRate", 0):
            s += f" (got {r['achievedEnqueueRate']}/s)"
        return s
    return f"{r['jobsPerSec']:,}/s"


def metric(r):
    """Throughput (higher is better) or p99 latency (lower is better)."""
    return r["latencyMs"]["p99"] if "latencyMs" in r else r["jobsPerSec"]


def load(path):
    gw, spine, raw = {}, {}, {}
    probe = None
    for line in open(path):
        if not line.startswith("RESULT "):
            continue
        r = json.loads(line[7:])
        if "probe" in r:
            probe = r
            continue
        k = key(r)
        if k is None:
            continue
        scenario, variant = k
        r["_probe"] = probe["tps"] if probe else None
        peer = r.get("peer", "")
        if peer == "graphile-worker" and variant is None:
            gw.setdefault(scenario, []).append(r)
        elif peer == "spine":
            spine.setdefault((scenario, variant), []).append(r)
        elif peer.startswith("raw-sql") and variant is None:
            raw.setdefault(scenario, []).append(r)
    return gw, spine, raw


def table(gw, spine, raw):
    out = ["| scenario | graphile-worker (best preset) | Spine | ratio | raw-SQL ceiling | probe (inserts/s before gw / Spine) |",
           "| --- | --- | --- | --- | --- | --- |"]
    verdicts = {}
    for scenario in ORDER:
        for (s, variant), sp in sorted(spine.items(), key=lambda kv: str(kv[0][1])):
            if s != scenario:
                continue
            g = gw.get(scenario, [])
            name = scenario + (f" (Spine {variant})" if variant else "")
            if is_latency(scenario):
                name += ", p50 / p99, lower is better"
            ratios = []
            for i, x in enumerate(sp):
                if i < len(g) and metric(g[i]):
                    ratios.append(metric(x) / metric(g[i]))
            ratio = " · ".join(f"{'p99 ' if is_latency(scenario) else ''}×{q:.2f}" for q in ratios) or "–"
            rawcell = "–"
            if raw.get(scenario):
                rv = [x["jobsPerSec"] for x in raw[scenario]]
                rawcell = " · ".join(f"{v:,}/s" for v in rv)
                rawcell += f" (Spine ×{statistics.median(metric(x) for x in sp) / statistics.median(rv):.2f})"
            probes = " · ".join(
                f"{g[i]['_probe'] if i < len(g) else '–'} / {x['_probe']}" for i, x in enumerate(sp))
            out.append(f"| {name} | {' · '.join(fmt_value(x) for x in g) or '–'} | "
                       f"{' · '.join(fmt_value(x) for x in sp)} | {ratio} | {rawcell} | {probes} |")
            verdicts[(scenario, variant)] = (statistics.median(metric(x) for x in sp),
                                             statistics.median(metric(x) for x in g) if g else None)
    return out, verdicts


def targets(verdicts, raw):
    def best(scenario):
        vals = [(v[0], v[1], var) for (s, var), v in verdicts.items() if s == scenario]
        return max(vals, key=lambda t: t[0]) if vals else None

    lines = ["| target (issue 3) | measured (medians) | verdict |", "| --- | --- | --- |"]
    for scenario, peer in (("burn-down", "graphile-worker perf preset (local queue 500)"),
                           ("burn-down batch=2000", "graphile-worker with a local queue of 2,000")):
        b = best(scenario)
        if b and b[1]:
            lines.append(f"| burn-down ≥ 1.5× {peer} | Spine ({b[2]}) {b[0]:,.0f}/s vs "
                         f"{b[1]:,.0f}/s = ×{b[0] / b[1]:.2f} | {'met' if b[0] >= 1.5 * b[1] else 'NOT met'} |")
        if b and raw.get("burn-down"):
            rv = statistics.median(x["jobsPerSec"] for x in raw["burn-down"])
            lines.append(f"| burn-down ≥ 0.75× raw-SQL ceiling (same run; Spine {b[2]}) | {b[0]:,.0f}/s vs {rv:,.0f}/s "
                         f"= ×{b[0] / rv:.2f} | {'met' if b[0] >= 0.75 * rv else 'NOT met'} |")
    e = best("enqueue-batch")
    if e and e[1]:
        lines.append(f"| batch enqueue ≥ 1.5× graphile-worker | {e[0]:,.0f}/s vs {e[1]:,.0f}/s = ×{e[0] / e[1]:.2f} "
                     f"| {'met' if e[0] >= 1.5 * e[1] else 'NOT met'} |")
    lat = verdicts.get(("latency", None))
    if lat and lat[1]:
        lines.append(f"| idle pickup p99 ≤ graphile-worker's | {lat[0]:.2f} ms vs {lat[1]:.2f} ms "
                     f"| {'met' if lat[0] <= lat[1] else 'NOT met'} |")
    return lines


def costs(gw, spine):
    lines = ["| burn-down | jobs/s | client CPU ms / 1k jobs | Postgres CPU ms / 1k jobs | WAL bytes / job | "
             "jobs / claim | jobs / result flush | commits |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    rows = [("graphile-worker c=24, localQueue 500, batch delays 0", x) for x in gw.get("burn-down", [])]
    rows += [("graphile-worker c=24, localQueue 2000, batch delays 0", x) for x in gw.get("burn-down batch=2000", [])]
    rows += [(f"Spine {var}", x) for (s, var), xs in spine.items() if s.startswith("burn-down") for x in xs]
    for name, x in rows:
        cells = [x.get(k, "–") for k in ("jobsPerSec", "clientCpuMsPer1kJobs", "pgCpuMsPer1kJobs", "walBytesPerJob",
                                           "jobsPerClaim", "jobsPerFlush", "commits")]
        lines.append(f"| {name} | " + " | ".join(str(c) if c is not None else "–" for c in cells) + " |")
    return lines


def main():
    if len(sys.argv) > 1:
        path = sys.argv[1]
    else:
        logs = sorted(glob.glob("/tmp/spine-bench/queue-*.log"), key=os.path.getmtime)
        if not logs:
            sys.exit("no log given and none in /tmp/spine-bench")
        path = logs[-1]
    gw, spine, raw = load(path)
    rows, verdicts = table(gw, spine, raw)
    print(f"Results from `{os.path.basename(path)}` (values per round, in run order; ratio = Spine / peer per "
          f"interleaved pair; probe = single-client autocommit INSERTs/s just before each figure).\n")
    print("\n".join(rows))
    print()
    print("\n".join(targets(verdicts, raw)))
    print()
    print("\n".join(costs(gw, spine)))


if __name__ == "__main__":
    main()
