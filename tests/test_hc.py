"""The hc start: mclust's model-based hierarchical agglomeration.

The merges are checked against a brute-force agglomeration written here in
numpy (every pair's cost at every step) and against R's mclust 6.0.0
(tests/fixtures/mclust_hc.R wrote tests/fixtures/mclust_hc.json; the suite
does not need R).
"""

import json
from pathlib import Path

import jax
import numpy as np
import pytest

import jgmm
from jgmm._engine.hc import agglomerate, partition_labels, svd_transform
from jgmm.sklearn import GaussianMixture

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "mclust_hc.json").read_text())


def term(n, W, alpha, D):
    """t(C) of jgmm._engine.hc, from its formula."""
    base = np.log((np.trace(W) + alpha) / n)
    if n <= D:
        return n * base
    sign, log_det = np.linalg.slogdet(W / n)
    return n * np.logaddexp(log_det if sign > 0 else -np.inf, base)


def brute_force(Z, w):
    """{k: the partition into k clusters (sorted lists of samples)} and the
    merge costs, searching all pairs at every step."""
    N, D = Z.shape
    centred = Z - w @ Z / w.sum()
    alpha = np.sum(w @ (centred * centred)) / (w.sum() * D)

    def cluster_term(members):
        weights, points = w[members], Z[members]
        mean = weights @ points / weights.sum()
        return term(weights.sum(), (points - mean).T @ ((points - mean) * weights[:, None]), alpha, D)

    clusters = [[i] for i in range(N) if w[i] > 0]
    partitions, costs = {len(clusters): sorted(clusters)}, []
    while len(clusters) > 1:
        pairs = [(a, b) for a in range(len(clusters)) for b in range(a + 1, len(clusters))]
        merge_cost = [cluster_term(clusters[a] + clusters[b]) - cluster_term(clusters[a]) - cluster_term(clusters[b])
                      for a, b in pairs]
        a, b = pairs[int(np.argmin(merge_cost))]
        costs.append(min(merge_cost))
        clusters[a] = sorted(clusters[a] + clusters.pop(b))
        partitions[len(clusters)] = sorted(clusters)
    return partitions, np.array(costs)


def clusters_of(labels):
    return sorted(np.flatnonzero(labels == c).tolist() for c in np.unique(labels[labels >= 0]))


@pytest.mark.parametrize("N,D,weighted", [(20, 1, False), (30, 3, True)])
def test_merges_equal_a_brute_force_agglomeration(x64, N, D, weighted):
    rng = np.random.default_rng(N)
    Z = np.concatenate([rng.normal(0, 1, (N // 2, D)), rng.normal(3, 0.5, (N - N // 2, D))])
    # integer weights count a row that many times; weight 0 leaves it out
    w = rng.integers(0, 3, N).astype(float) if weighted else np.ones(N)
    partitions, costs = brute_force(Z, w)
    ours, merges, our_costs = (np.asarray(a) for a in jax.jit(agglomerate, static_argnums=2)(Z, w, N))
    for k, expected in partitions.items():
        assert clusters_of(ours[k - 1]) == expected, k
    np.testing.assert_allclose(our_costs[: len(costs)], costs, rtol=1e-10, atol=1e-10)
    assert np.all(np.isinf(our_costs[len(costs):])) and np.all(merges[len(costs):] == -1)
    assert np.all(ours[:, w == 0] == -1)


@pytest.mark.parametrize("name", ["iris", "USArrests"])
def test_partitions_equal_mclusts_hc(x64, name):
    X, classes = np.asarray(REFERENCE[name]["X"]), np.asarray(REFERENCE[name]["classes"])
    w = np.ones(len(X))
    partitions = np.asarray(agglomerate(svd_transform(X, w), w, 9)[0])
    for k in range(1, 10):
        assert clusters_of(partitions[k - 1]) == clusters_of(classes[:, k - 1]), k
        # nested: every cluster of k + 1 lies in one of k
        if k > 1:
            assert all(len(set(partitions[k - 2][c])) == 1 for c in clusters_of(partitions[k - 1]))
        labels = np.asarray(partition_labels(partitions[k - 1], 9))
        assert sorted(set(labels)) == list(range(k)) and clusters_of(labels) == clusters_of(partitions[k - 1])


def test_the_hc_start_is_deterministic_and_serves_fit_and_the_estimator():
    X = jgmm.load_faithful()
    fits = {}
    for family in ("full", "VEV"):
        fits[family] = jgmm.fit(jax.random.key(0), X, 3, family, init="hc")
        again = jgmm.fit(jax.random.key(1), X, 3, family, init="hc", n_init=2)
        assert fits[family].status == jgmm.Status.CONVERGED
        for x, y in zip(jax.tree.leaves(fits[family].params), jax.tree.leaves(again.params)):
            np.testing.assert_array_equal(x, y)
    gm = GaussianMixture(3, init_params="hc", random_state=5).fit(X)
    np.testing.assert_allclose(gm.means_, fits["full"].params.means, rtol=1e-5)


def test_select_shares_one_merge_tree_and_each_cell_equals_fit(x64):
    X = jgmm.load_faithful()
    table = jgmm.select(jax.random.key(0), X, (2, 3), ("full", "VEV"), init="hc", n_init=1, nested=False).to_dict()
    assert set(table["start"]) == {"hc"}
    for family, K, log_likelihood in zip(table["covariance_type"], table["n_components"], table["total_log_likelihood"]):
        alone = jgmm.fit(jax.random.key(3), X, int(K), family, init="hc")
        assert log_likelihood == pytest.approx(float(alone.log_likelihood) * len(X), rel=1e-9)
    # With the mixed policy the table says which restart won each cell.
    mixed = jgmm.select(jax.random.key(0), X, (2, 3), ("full", "VEV"), init="hc+kmeans", n_init=3, nested=False).to_dict()
    from_hc = mixed["start"] == "hc"
    assert set(mixed["start"]) <= {"hc", "kmeans"}
    logl, hc_logl = mixed["total_log_likelihood"], table["total_log_likelihood"]
    np.testing.assert_allclose(logl[from_hc], hc_logl[from_hc], rtol=1e-9)
    assert np.all(logl >= hc_logl - 1e-9 * np.abs(hc_logl))


def test_the_mixed_policy_is_never_below_the_hc_start(x64):
    # Old Faithful: a k-means restart beats hc; wine in raw units: hc beats
    # 400 key-driven starts (experiments/results/restarts.txt).
    from sklearn.datasets import load_wine

    for X, hc_wins in ((jgmm.load_faithful(), False), (load_wine().data, True)):
        hc = float(jgmm.fit(jax.random.key(0), X, 3, init="hc").log_likelihood)
        mixed = float(jgmm.fit(jax.random.key(0), X, 3, init="hc+kmeans", n_init=4).log_likelihood)
        assert mixed == pytest.approx(hc, rel=1e-12) if hc_wins else mixed > hc + 1e-3
