"""The issues' speed goals, checked against a pytest-benchmark JSON file; prints Markdown for RESULTS.md.

    pytest benchmarks/ --benchmark-only --benchmark-json=bench.json
    python benchmarks/goals.py bench.json [more.json ...] > goals.md

Several files (a suite run in parts, as benchmarks/gpu_session.sh does) are merged; where two hold the same
benchmark, the later file's figure is used.

Two tables: every benchmark group with each provider's median time and throughput, and each goal with the
measured figure and whether it is met (kernel goals are judged on CUDA-graph replays, device time; the same
ratios launched from Python are listed with "-"). Goals are stated for an H100-class GPU; on a CPU run the verdicts
mean nothing (the suite runs there at small sizes, with the kernels under the interpreter).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path


def load(*paths: Path) -> tuple[dict, dict]:
    """-> ({group: {provider: benchmark entry}}, machine/commit info) of one or more files, later ones winning."""
    groups: dict[str, dict] = defaultdict(dict)
    commits, machine = [], {}
    for path in paths:
        data = json.loads(Path(path).read_text())
        for b in data.get("benchmarks", []):
            provider = (b.get("params") or {}).get("provider") or b["name"]
            groups[b.get("group") or b["name"]][provider] = b
        commits.append(data.get("commit_info", {}))
        machine = data.get("machine_info", {})
    ids = sorted({c.get("id", "?")[:12] for c in commits})
    commit = {"id": ", ".join(ids), "dirty": any(c.get("dirty") for c in commits)}
    return dict(groups), {"machine": machine, "commit": commit}


def median(entry: dict) -> float:
    return entry["stats"]["median"]


def rate(entry: dict) -> tuple[float, str] | None:
    """(throughput, unit) recorded by run_bench in extra_info, e.g. (1.2e6, 'images/s')."""
    for k, v in (entry.get("extra_info") or {}).items():
        if "/s" in k and isinstance(v, (int, float)):
            return float(v), k
    return None


def _speedup(groups, group, fast, slow):
    g = groups.get(group, {})
    if fast in g and slow in g:
        return median(g[slow]) / median(g[fast])
    return None


def goals(groups: dict) -> list[tuple[str, str, str, bool | None]]:
    """(issue, goal, measured, met) rows; met is None when a benchmark it needs is missing."""
    rows = []

    def add(issue, goal, value, text, met):
        rows.append((issue, goal, "missing" if value is None else text, None if value is None else met))

    def ratio(issue, group, fast, slow, need, verdict=True):
        x = _speedup(groups, group, fast, slow)
        met = (x is not None and x >= need) if verdict else None
        add(issue, f"{group}: {fast} >= {need:g}x {slow}", x, f"{x or 0:.2f}x", met)

    def fastest(group, prefix):  # the best showing: "fused", "fused_channels_last", "fused_compiled", ...
        ours = [p for p in groups.get(group, {}) if p.startswith(prefix)]
        return min(ours, key=lambda p: median(groups[group][p]), default=prefix)

    # the kernels: the verdict on device time (groups "... graph": CUDA graph replays, as the compiled step runs
    # them); the same ratios launched from Python ("... eager", host-bound at these sizes) are shown, unjudged
    kernel_goals = (("acgan_loss ", "#3", (("reference", 5), ("compiled", 1))),
                    ("spectral_norm model ", "#4", (("parametrization", 5), ("compiled", 2))),
                    ("spectral_norm update ", "#4", (("reference", 5), ("compiled", 2))))  # fmt: skip
    for prefix, issue, against in kernel_goals:
        for group in sorted(g for g in groups if g.startswith(prefix)):
            for slow, need in against:
                ratio(issue, group, fastest(group, "fused"), slow, need, verdict=not group.endswith(" eager"))
    steps: dict[str, float] = {}  # preset -> the fastest fastacgan step, images/s
    for group in sorted(groups):
        m = re.fullmatch(r"step (\S+) x(\S+) batch (\d+)", group)
        if not m:
            continue
        batch = int(m.group(3))
        best = fastest(group, "fastacgan")  # "fastacgan" or "fastacgan_graph" (--graph-step)
        if batch in (64, 256):
            ratio("#6", group, best, "reference", {64: 10, 256: 5}[batch])
        fast = groups[group].get(best)
        r = rate(fast) if fast else None
        if r:
            steps[m.group(1)] = max(steps.get(m.group(1), 0.0), r[0])
        if fast and batch == 1024:
            extra = fast.get("extra_info") or {}
            frac = extra.get("fraction_of_bf16_peak")  # of the FLOPs fastacgan executes
            text = f"{100 * (frac or 0):.1f}%"
            if frac and extra.get("work_tflops") and extra.get("tflops"):  # the same step counted as the reference
                text += f" ({100 * frac * extra['work_tflops'] / extra['tflops']:.1f}% in the reference's FLOPs)"
            add("#6", f"{group}: >= 25% of the bf16 compute bound", frac, text,
                frac is not None and frac >= 0.25)  # fmt: skip
    for group in sorted(g for g in groups if g.startswith("cifar10 epoch")):
        ratio("#6", group, fastest(group, "fastacgan"), "reference", 10)
    # loaders: the fastest GPU-feeding loader against the fastest training step at that resolution
    for group, preset in (("loader cifar32", "cifar10"), ("loader big128", "isic128")):
        rates = [rate(e) for p, e in groups.get(group, {}).items() if p != "torch_pil"]
        best = max((r[0] for r in rates if r), default=None)
        need = steps.get(preset)
        value = None if best is None or need is None else best / need
        text = f"{best or 0:,.0f} vs {need or 0:,.0f} images/s ({value or 0:.1f}x)"
        add(
            "#5", f"{group}: best loader >= 3x the fastest {preset} step", value, text, value is not None and value >= 3
        )
    res = rate(groups["loader cifar32"]["resident"]) if "resident" in groups.get("loader cifar32", {}) else None
    value = res[0] if res else None
    met = value is not None and value >= 1e6
    add("#5", "loader cifar32: resident >= 1,000,000 images/s", value, f"{value or 0:,.0f}", met)
    return rows


def markdown(groups: dict, info: dict) -> str:
    out = []
    mach, commit = info["machine"], info["commit"]
    cpu = (mach.get("cpu") or {}).get("brand_raw", "")
    out.append(f"commit {commit.get('id', '?')}{' (dirty)' if commit.get('dirty') else ''}; "
               f"python {mach.get('python_version', '?')}; {mach.get('node', '')} {cpu}".rstrip())  # fmt: skip
    out += ["", "| group | provider | median | throughput |", "| --- | --- | --- | --- |"]
    for group in sorted(groups):
        for provider, e in sorted(groups[group].items(), key=lambda kv: median(kv[1])):
            r = rate(e)
            out.append(f"| {group} | {provider} | {median(e) * 1e6:,.1f} us | {f'{r[0]:,.4g} {r[1]}' if r else ''} |")
    out += ["", "| issue | goal | measured | met |", "| --- | --- | --- | --- |"]
    for issue, goal, measured, met in goals(groups):
        out.append(f"| {issue} | {goal} | {measured} | {'-' if met is None else 'yes' if met else '**no**'} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", type=Path, nargs="+", help="file(s) written by pytest --benchmark-json")
    args = ap.parse_args(argv)
    for path in args.json:
        if not path.is_file():
            print(f"goals.py: {path}: no such file (run pytest benchmarks/ --benchmark-only --benchmark-json=...)",
                  file=sys.stderr)  # fmt: skip
            return 2
    try:
        groups, info = load(*args.json)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        print(f"goals.py: {' '.join(map(str, args.json))}: not a pytest-benchmark JSON file ({e})", file=sys.stderr)
        return 2
    if not groups:
        print(f"goals.py: {' '.join(map(str, args.json))} holds no benchmarks", file=sys.stderr)
        return 2
    sys.stdout.write(markdown(groups, info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
