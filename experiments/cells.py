"""How often does a selection miss the best optimum? Cells below 1,000 starts.

For each (data set, family, K) cell — six data sets (three with features in
raw units of very different scales), scikit-learn's four families, K = 1..9
— the best log-likelihood of ``jgmm.select`` with ``n_init = 10`` under a
start policy, against the best of 1,000 key-driven starts (500 k-means, 500
random responsibilities) of the same cell. Every run in float64 with
tol = 1e-6 and max_iter = 1000, so the cells differ only in where EM starts.
A cell counts as missed when its best is below the best any run found by
more than 1e-5 (relative, as experiments/restarts.py).

    python experiments/cells.py --policy NAME      # one policy's cells
    python experiments/cells.py --reference        # the 1,000 starts (resumes)
    python experiments/cells.py --report           # the table

Policies: "kmeans" (k-means starts, nested=False: each cell alone),
"nested" (k-means starts and nested K), "hc+kmeans" (the hc start and
k-means, nested K). A policy of an earlier version is run from its tree
(``PYTHONPATH=<tree> python experiments/cells.py --policy before``: its
defaults). Each run writes results/cells/<name>.json; the reference runs
its starts in batches of ``BATCH`` (keys 0, 1, ...) and keeps each data
set's best after every batch in results/cells/reference/<data set>.json, so
a stopped run resumes where it stopped (about 3 hours in all on 2 CPU
cores). The report, over the data sets the reference has reached, writes
results/cells.txt.
"""

import argparse
import json
from pathlib import Path

import jax
import numpy as np

import jgmm

RESULTS = Path(__file__).with_name("results")
FAMILIES = ("full", "tied", "diag", "spherical")
KS = range(1, 10)
EM = dict(tol=1e-6, max_iter=1000)
POLICIES = {
    "before": dict(),
    "kmeans": dict(init="kmeans", nested=False),
    "nested": dict(init="kmeans", nested=True),
    "hc+kmeans": dict(init="hc+kmeans", nested=True),
}
REFERENCE = (("kmeans", 500), ("random", 500))
BATCH = 100
MISS = 1e-5


def datasets():
    from sklearn.datasets import load_breast_cancer, load_iris, load_wine
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    labels = rng.integers(6, size=3000)
    blobs = rng.normal(0, 2.5, (6, 3))[labels] + rng.normal(size=(3000, 3))
    return {
        "faithful": jgmm.load_faithful(),
        "iris": load_iris().data,
        "wine_standardised": StandardScaler().fit_transform(load_wine().data),
        "wine_raw": load_wine().data,
        "blobs": blobs,
        "breast_cancer_raw": load_breast_cancer().data,  # the slowest last
    }


def cells(X, key=0, **kwargs):
    """{family: [mean log-likelihood per K]} of one select call."""
    table = jgmm.select(jax.random.key(key), X, KS, FAMILIES, **kwargs, **EM).to_dict()
    N = X.shape[0]
    return {f: (table["total_log_likelihood"][table["covariance_type"] == f] / N).tolist() for f in FAMILIES}


def run(name, kwargs):
    out = {}
    for data, X in datasets().items():
        out[data] = cells(X, **kwargs)
        print(name, data, flush=True)
    path = RESULTS / "cells" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))


def reference():
    """Each data set's best per cell over the REFERENCE starts, batch by
    batch (module doc); batches already in its file are skipped."""
    folder = RESULTS / "cells" / "reference"
    folder.mkdir(parents=True, exist_ok=True)
    for data, X in datasets().items():
        path = folder / f"{data}.json"
        found = json.loads(path.read_text()) if path.exists() else {"batches": [], "starts": 0, "best": None}
        for init, n in REFERENCE:
            for b in range(n // BATCH):
                if f"{init} {b}" in found["batches"]:
                    continue
                r = cells(X, key=b, init=init, n_init=BATCH, nested=False)
                best = found["best"] or r
                found = {"batches": found["batches"] + [f"{init} {b}"], "starts": found["starts"] + BATCH,
                         "best": {f: np.maximum(best[f], r[f]).tolist() for f in FAMILIES}}
                path.write_text(json.dumps(found))
                print("reference", data, init, b, flush=True)


def report():
    found = {p.stem: json.loads(p.read_text()) for p in sorted((RESULTS / "cells").glob("*.json"))}
    runs = {p.stem: json.loads(p.read_text()) for p in (RESULTS / "cells" / "reference").glob("*.json")}
    reference = {d: runs[d]["best"] for d in datasets() if d in runs}
    names = [n for n in POLICIES if n in found]
    best = {d: {f: np.max([reference[d][f]] + [found[n][d][f] for n in names], axis=0) for f in FAMILIES} for d in reference}
    lines = [
        "Cells (data set, family, K = 1..9) whose best of n_init = 10 is below the best found "
        f"(the reference starts: {', '.join(f'{n} {i}' for i, n in REFERENCE)}; and every policy) by > {MISS:g} relative",
        "",
        f"{'data set':20} {'cells':>5} " + " ".join(f"{n:>10}" for n in names) + f" {'reference':>10} {'starts':>6}",
    ]
    totals = np.zeros(len(names) + 1, int)
    for d in reference:
        row = []
        for values in [[found[n][d] for n in names], [reference[d]]]:
            for v in values:
                row.append(sum(int(np.sum(np.asarray(v[f]) < best[d][f] - MISS * np.abs(best[d][f]))) for f in FAMILIES))
        totals += row
        lines.append(f"{d:20} {len(FAMILIES) * len(KS):5d} " + " ".join(f"{r:10d}" for r in row) + f" {runs[d]['starts']:6d}")
    lines.append(f"{'all':20} {len(reference) * len(FAMILIES) * len(KS):5d} " + " ".join(f"{r:10d}" for r in totals))
    falls = {n: sum(int(np.sum(np.diff(found[n][d][f]) < -1e-6)) for d in reference for f in FAMILIES) for n in names}
    lines += ["", "log-likelihood falling from K to K + 1 (cells): " + ", ".join(f"{n} {c}" for n, c in falls.items())]
    text = "\n".join(lines)
    print(text)
    (RESULTS / "cells.txt").write_text(text + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", choices=tuple(POLICIES))
    parser.add_argument("--reference", action="store_true")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    with jax.enable_x64(True):
        if args.policy:
            run(args.policy, dict(POLICIES[args.policy], n_init=10))
        if args.reference:
            reference()
    if args.report:
        report()


if __name__ == "__main__":
    main()
