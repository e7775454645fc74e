#!/usr/bin/env python3
"""Print one table from hyperfine JSON exports (each with a 'baseline' and an 'rkt' run)."""
import json
import os
import sys

rows = []
for path in sys.argv[1:]:
    with open(path) as f:
        data = json.load(f)
    by_name = {r["command"]: r for r in data["results"]}
    base, rkt = by_name.get("baseline"), by_name.get("rkt")
    if not base or not rkt:
        continue
    name = os.path.splitext(os.path.basename(path))[0]
    rows.append((name, rkt["mean"], rkt["stddev"] or 0.0, base["mean"], base["stddev"] or 0.0, rkt["mean"] / base["mean"]))

header = ("benchmark", "rkt mean", "± sd", "baseline mean", "± sd", "rkt/baseline")
fmt = "{:<28} {:>10} {:>8} {:>14} {:>8} {:>13}"
print(fmt.format(*header))
for name, rm, rs, bm, bs, ratio in rows:
    print(fmt.format(name, f"{rm*1000:.1f} ms", f"{rs*1000:.1f}", f"{bm*1000:.1f} ms", f"{bs*1000:.1f}", f"{ratio:.2f}x"))
