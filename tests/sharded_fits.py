"""Fits on data split over 4 CPU devices vs one device; run by tests/test_shard.py
in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=4.
Prints one JSON object of the largest differences found."""

import json
import os
import re
import sys
from pathlib import Path

import jax
import numpy as np

import jgmm

FAMILIES = ("full", "tied", "diag", "spherical", "VEV", "EVE")  # the four, and two with inner iterations


def largest_relative_difference(a: jgmm.GMMParams, b: jgmm.GMMParams) -> float:
    """Over the weights, means and precision factors: max |a - b| / max |a|."""
    pairs = [(np.asarray(x, np.float64), np.asarray(y, np.float64)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))]
    return max(float(np.max(np.abs(x - y)) / np.max(np.abs(x))) for x, y in pairs)


def split_programs() -> int:
    """How many grid programs for 4 devices XLA has dumped so far (--xla_dump_to)."""
    dump = re.search(r"--xla_dump_to=(\S+)", os.environ.get("XLA_FLAGS", ""))
    if not dump:
        return 0
    texts = (path.read_text() for path in Path(dump.group(1)).glob("*grid_program*after_optimizations.txt"))
    return sum("num_partitions=4" in text for text in texts)


def main():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (151, 3)), rng.normal(5, 1, (150, 3))])  # N = 301: padded to 304
    out = {"devices": jax.device_count()}
    Xs, ws = jgmm.shard(X)
    out["padded_shape"] = list(Xs.shape)
    out["pad_weights"] = np.asarray(ws[301:]).tolist()
    out["shard_rows"] = sorted({s.data.shape[0] for s in Xs.addressable_shards})
    for dtype in ("float64", "float32"):
        with jax.enable_x64(dtype == "float64"):
            Xd = X.astype(dtype)
            Xs, ws = jgmm.shard(Xd)
            for family in FAMILIES if dtype == "float64" else ("full",):
                start = jgmm.fit(jax.random.key(1), Xd, 3, family, init="random", max_iter=1).params
                one = jgmm.fit(jax.random.key(0), Xd, 3, family, init=start, tol=0.0, max_iter=20)
                four = jgmm.fit(jax.random.key(0), Xs, 3, family, init=start, sample_weight=ws, tol=0.0, max_iter=20, chunk_size=32)
                out[f"fit {family} {dtype}"] = largest_relative_difference(one.params, four.params)
    with jax.enable_x64(True):
        Xs, ws = jgmm.shard(X)
        one = jgmm.select(jax.random.key(0), X, range(1, 3), ("tied",), n_init=2)
        four = jgmm.select(jax.random.key(0), Xs, range(1, 3), ("tied",), n_init=2, sample_weight=ws)
        # mclust's default prior from the data where they lie, padding left out
        one_map = jgmm.fit(jax.random.key(0), X, 2, "diag", prior="default")
        four_map = jgmm.fit(jax.random.key(0), Xs, 2, "diag", prior="default", sample_weight=ws)
        out["fit default prior"] = largest_relative_difference(one_map.params, four_map.params)
        # the variational fit (scikit-learn's BayesianGaussianMixture) where the data lie
        start = jgmm.fit_variational(jax.random.key(1), X, 3, init="random", max_iter=1).params
        one_vb = jgmm.fit_variational(jax.random.key(0), X, 3, init=start, tol=0.0, max_iter=20)
        four_vb = jgmm.fit_variational(jax.random.key(0), Xs, 3, init=start, sample_weight=ws, tol=0.0, max_iter=20)
        out["fit variational"] = largest_relative_difference(one_vb.params, four_vb.params)
        out["fit variational bound"] = abs(float(one_vb.lower_bound - four_vb.lower_bound) / float(one_vb.lower_bound))
        # derivatives through a fit (implicit differentiation) where the data lie
        mean = lambda X, w: jgmm.fit(jax.random.key(0), X, 2, tol=1e-12, max_iter=1000, sample_weight=w).params.means[0, 0]
        one_grad = jax.grad(mean)(X, np.ones(301))
        four_grad = jax.grad(mean)(Xs, ws)[:301]
        out["fit gradient"] = float(np.max(np.abs(one_grad - four_grad)) / np.max(np.abs(one_grad)))
        for column in ("bic", "icl"):
            a, b = one.to_dict()[column], four.to_dict()[column]
            out[f"select {column}"] = float(np.max(np.abs(a - b) / np.abs(a)))
        out["select best"] = [list(one.best), list(four.best)]
    with jax.enable_x64(True):
        from jgmm.sklearn import GaussianMixture

        Xs, ws = jgmm.shard(X)
        one = GaussianMixture(3, random_state=0).fit(X)
        before = split_programs()
        four = GaussianMixture(3, random_state=0).fit(Xs, sample_weight=np.asarray(ws))  # only X is split
        out["estimator split programs"] = split_programs() - before
        out["estimator means"] = float(np.max(np.abs(one.means_ - four.means_)) / np.max(np.abs(one.means_)))
    grid = jax.sharding.Mesh(np.array(jax.devices()).reshape(2, 2), ("a", "b"))
    on_grid = jax.device_put(X[:300], jax.sharding.NamedSharding(grid, jax.sharding.PartitionSpec("a")))
    try:
        jgmm.fit(jax.random.key(0), on_grid, 2)
        out["two-axis mesh"] = "fitted"
    except ValueError as err:
        out["two-axis mesh"] = str(err)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
