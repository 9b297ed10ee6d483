"""Two versions of jgmm side by side, interleaved in one run: is a change slower?

Each version is a checkout of the repository (a git worktree, say); its own
experiments/bench_em.py and bench_select.py are run against its own jgmm, in
fresh processes, alternating old and new for ``--rounds`` rounds, so that
drifting load on the machine hits both alike. Measured per version: EM time
per iteration for bench_em's cases (jgmm only, compile excluded), and
bench_select's model selection cold (compilation included, no persistent
cache) and warm. Prints the medians over rounds and the ratio new/old.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python experiments/compare_versions.py OLD NEW [--rounds 2] [--quick] [--write NAME]
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def worker(tree: str, what: str, quick: bool) -> dict:
    """Run in a fresh process with ``tree``'s jgmm and experiments first on the path."""
    sys.path[:0] = [tree, str(Path(tree) / "experiments")]
    import bench_em
    import bench_select

    if what == "em":
        cases = bench_em.CASES[:2] if quick else bench_em.CASES
        times = {}
        for ct, N, D, K in cases:
            X = bench_em.make_data(N, D, K)
            start = bench_em.start_params(X, K, ct)
            times[f"em {ct} N={N} D={D} K={K} (ms/iter)"] = bench_em.time_jgmm(X, start)[0] * 1e3
        return times
    X = bench_select.make_data()
    if what == "select-cold":
        return {"select cold (s)": bench_select.run_jgmm_cold(X)["seconds"]}
    return {"select warm (s)": bench_select.run_jgmm_warm(X)[0]}


def run(tree: str, what: str, quick: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR", "PYTHONPATH")}
    command = [sys.executable, __file__, "--worker", tree, what] + (["--quick"] if quick else [])
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.splitlines()[-1])


def _dirty(tree: str) -> bool:
    status = subprocess.run(["git", "-C", tree, "status", "--porcelain", "jgmm"], capture_output=True, text=True)
    return bool(status.stdout.strip())


def main():
    args = sys.argv[1:]
    quick = "--quick" in args
    if args[0] == "--worker":
        print(json.dumps(worker(args[1], args[2], quick)))
        return
    old, new = (str(Path(a).resolve()) for a in args[:2])
    rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 2
    samples = {"old": {}, "new": {}}
    for r in range(rounds):
        for what in ("em", "select-cold", "select-warm"):
            for name, tree in (("old", old), ("new", new)) if r % 2 == 0 else (("new", new), ("old", old)):
                for metric, value in run(tree, what, quick).items():
                    samples[name].setdefault(metric, []).append(value)
                    print(f"round {r + 1} {name:>3} {metric}: {value:.3f}", flush=True)
    commit = lambda tree: subprocess.run(
        ["git", "-C", tree, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip() or "?"
    lines = [
        f"jgmm before ({commit(old)}) and after ({commit(new)}{', uncommitted changes' if _dirty(new) else ''}), "
        f"interleaved, {rounds} rounds, medians",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}",
        "",
        f"{'measure':<44} {'before':>10} {'after':>10} {'after/before':>13}",
    ]
    for metric in samples["old"]:
        a, b = np.median(samples["old"][metric]), np.median(samples["new"][metric])
        lines.append(f"{metric:<44} {a:10.3f} {b:10.3f} {b / a:13.3f}")
    print("\n" + "\n".join(lines))
    if "--write" in args:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / args[args.index("--write") + 1]).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
