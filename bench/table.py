#!/usr/bin/env python3
"""Print one table from hyperfine JSON exports. Each export holds a command named
'rkt' and one or more baselines named 'baseline' or 'baseline-<tool>'; every baseline
gets a row with the ratio rkt/baseline (of the means and of the medians)."""
import json
import os
import sys


def pct(times, q):
    s = sorted(times)
    if not s:
        return float("nan")
    i = min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))
    return s[i]


rows = []
for path in sys.argv[1:]:
    with open(path) as f:
        data = json.load(f)
    by_name = {r["command"]: r for r in data["results"]}
    rkt = by_name.get("rkt")
    if not rkt:
        continue
    bench = os.path.splitext(os.path.basename(path))[0]
    for name, base in sorted(by_name.items()):
        if not name.startswith("baseline"):
            continue
        tool = name.partition("-")[2] or "baseline"
        rows.append((
            bench, tool, len(rkt["times"]),
            rkt["median"], pct(rkt["times"], 0.99), base["median"], pct(base["times"], 0.99),
            rkt["mean"] / base["mean"], rkt["median"] / base["median"],
        ))

fmt = "{:<24} {:<10} {:>5} {:>11} {:>11} {:>11} {:>11} {:>8} {:>8}"
print(fmt.format("benchmark", "baseline", "runs", "rkt median", "rkt p99", "base median", "base p99", "mean x", "median x"))
ms = lambda s: f"{s*1000:.1f} ms"
for b, tool, n, rm, rp, bm, bp, rmean, rmed in rows:
    print(fmt.format(b, tool, n, ms(rm), ms(rp), ms(bm), ms(bp), f"{rmean:.2f}", f"{rmed:.2f}"))
