"""Time of the hc start (jgmm._engine.hc): compile and run, on HC_SAMPLE = 2,000
rows, beside R mclust's hc() on the same data when Rscript is installed.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python experiments/bench_hc.py [--out FILE]

Each row: D features, two well-separated clusters; the merge tree for
K_max = 9 from the SVD transform (what ``init="hc"`` runs), in float32. The
run time is the median of 3 runs after the first.
"""

import argparse
import os
import shutil
import subprocess
import tempfile
import time

import jax
import numpy as np

from jgmm._engine.hc import HC_SAMPLE, agglomerate, svd_transform


def mclust_seconds(X):
    """Seconds of mclust's hc(X, "VVV", use = "SVD") (median of 3), or None."""
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.csv")
        np.savetxt(path, X, delimiter=",")
        script = (
            "suppressMessages(library(mclust)); X <- as.matrix(read.csv('%s', header = FALSE)); "
            "t <- replicate(3, system.time(hc(X, modelName = 'VVV', use = 'SVD'))['elapsed']); cat(median(t))"
        ) % path
        out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True)
        return float(out.stdout) if out.returncode == 0 else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()
    program = jax.jit(lambda X, w: agglomerate(svd_transform(X, w), w, 9)[0])
    lines = [f"hc start, N = {HC_SAMPLE}, K_max = 9, float32, {jax.devices()[0].device_kind}",
             f"{'D':>4} {'compile s':>10} {'run s':>8} {'mclust hc s':>12}"]
    for D in (2, 5, 10):
        rng = np.random.default_rng(D)
        X = rng.normal(size=(HC_SAMPLE, D)).astype(np.float32)
        X[: HC_SAMPLE // 2] += 4
        w = np.ones(HC_SAMPLE, np.float32)
        start = time.perf_counter()
        compiled = program.lower(X, w).compile()
        compile_s = time.perf_counter() - start
        jax.block_until_ready(compiled(X, w))
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            jax.block_until_ready(compiled(X, w))
            runs.append(time.perf_counter() - start)
        r = mclust_seconds(X)
        lines.append(f"{D:>4} {compile_s:>10.2f} {np.median(runs):>8.3f} {'n/a' if r is None else f'{r:.3f}':>12}")
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as file:
            file.write(table + "\n")


if __name__ == "__main__":
    main()
