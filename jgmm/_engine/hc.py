"""Model-based hierarchical agglomeration: mclust's ``hc`` start (Fraley 1998).

Every sample starts as its own cluster; each step merges the two clusters
whose union costs least in the classification likelihood of the
unconstrained (VVV) model, which mclust regularises so that small clusters
have a finite cost. A cluster C of weight n (Σ w), mean m and scatter
W = Σ_{x∈C} w (x - m)(x - m)ᵀ has the term

    t(C) = n log(β (tr W + α) / n)                 if n <= D,
    t(C) = n log(|W / n| + β (tr W + α) / n)       otherwise,

with β = 1 and α = tr(W_all) / (N D), W_all the scatter of all the data
(mclust's ``hcVVV`` and ``vvvtij``); merging C_i and C_j costs
t(C_i ∪ C_j) - t(C_i) - t(C_j). The partitions are nested: one merge tree
gives the start of every K.

As mclust (``hcUse = "SVD"``), the agglomeration runs on the data
standardised and rotated to their principal axes, each axis scaled by the
square root of its singular value, and on at most ``HC_SAMPLE`` rows (an
evenly strided subsample; the first E-step assigns the rest). Each step
updates the costs of the merged cluster with every other (one (N, D, D)
batch) and keeps each cluster's cheapest partner; a cluster whose partner
was merged keeps its old best as a lower bound and computes its costs again
only when that bound comes first. A step is O(N D³) per cluster computed,
not a search over all N² pairs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

HC_SAMPLE = 2000
BETA = 1.0


def svd_transform(X, w):
    """mclust's "SVD" transform of (N, D) data with weights w (N,): centred,
    scaled to unit standard deviation, rotated to the principal axes V of
    the scaled data Z = U S Vᵀ and scaled by S^(-1/2): Z V S^(-1/2). A
    constant feature becomes 0."""
    n = jnp.sum(w)
    mean = w @ X / n
    centred = X - mean
    sd = jnp.sqrt(w @ (centred * centred) / (n - 1))
    Z = jnp.where(sd > 0, centred / jnp.where(sd > 0, sd, 1), 0)
    _, S, Vt = jnp.linalg.svd(jnp.sqrt(w)[:, None] * Z, full_matrices=False)
    scale = jnp.where(S > 0, jax.lax.rsqrt(jnp.where(S > 0, S, 1)), 0)
    return (Z @ Vt.T) * scale


def _log_det_psd(W):
    """log |W| of a batch (..., D, D) of positive semi-definite matrices by
    elimination without pivoting, unrolled over D (batched LU is slow for
    small matrices); -inf where a pivot is not positive (W singular)."""
    log_det = jnp.zeros(W.shape[:-2], W.dtype)
    for _ in range(W.shape[-1]):
        pivot = W[..., 0, 0]
        ok = pivot > 0
        safe = jnp.where(ok, pivot, 1)
        log_det = jnp.where(ok, log_det + jnp.log(safe), -jnp.inf)
        W = W[..., 1:, 1:] - W[..., 1:, 0, None] * W[..., None, 0, 1:] / safe[..., None, None]
    return log_det


def _term(n, W, trace, alpha, with_det):
    """t(C) (module doc) of clusters of weight n (...), scatter W (..., D, D)
    and tr W; 0 for n = 0. ``with_det``: some cluster has n > D."""
    D = W.shape[-1]
    safe_n = jnp.where(n > 0, n, 1)
    base = jnp.log(BETA * (trace + alpha) / safe_n)
    if with_det:
        base = jnp.where(n > D, jnp.logaddexp(_log_det_psd(W) - D * jnp.log(safe_n), base), base)
    return jnp.where(n > 0, n * base, 0)


def _union(n_i, mean_i, W_i, trace_i, n, mean, W, trace):
    """Weight, mean, scatter and trace of cluster i (its statistics, the
    ``_i`` arguments) merged with the clusters of the others (leading axes
    broadcast)."""
    n_union = n_i + n
    safe = jnp.where(n_union > 0, n_union, 1)
    d = mean - mean_i
    c = n_i * n / safe
    W_union = W + W_i + c[..., None, None] * d[..., :, None] * d[..., None, :]
    mean_union = (n_i * mean_i + n[..., None] * mean) / safe[..., None]
    return n_union, mean_union, W_union, trace + trace_i + c * jnp.sum(d * d, -1)


def _merge_costs(state, i, alpha):
    """(N,) the cost of merging cluster i with each cluster (inf for itself
    and for clusters that are gone)."""
    n, mean, W, trace, T = state["n"], state["mean"], state["W"], state["trace"], state["T"]
    D = W.shape[-1]
    n_union, _, W_union, trace_union = _union(n[i], mean[i], W[i], trace[i], n, mean, W, trace)
    alive = (n > 0) & (n[i] > 0) & (jnp.arange(n.shape[0]) != i)
    term = jax.lax.cond(
        jnp.any(alive & (n_union > D)),
        lambda: _term(n_union, W_union, trace_union, alpha, True),
        lambda: _term(n_union, W_union, trace_union, alpha, False),
    )
    return jnp.where(alive, term - T[i] - T, jnp.inf)


def agglomerate(Z, w, K_max: int):
    """The merge tree of Z (N, D) with weights w (rows of weight 0 take no
    part), and its partitions.

    Returns:
      partitions: (K_max, N) int32; row k - 1 the cluster of every sample
        when k clusters are left (the smallest sample index in its
        cluster; -1 for rows of weight 0). With fewer than k samples of
        positive weight, the partition into single samples.
      merges: (N - 1, 2) the clusters (i < j, by that index) merged at each
        step, -1 once one cluster is left.
      costs: (N - 1,) the cost of each merge (inf once one is left).
    """
    Z = jnp.asarray(Z)
    N, D = Z.shape
    dtype = Z.dtype
    w = jnp.asarray(w, dtype)
    n_total = jnp.sum(w)
    centred = Z - w @ Z / n_total
    alpha = jnp.maximum(jnp.sum(w @ (centred * centred)) / (n_total * D), jnp.finfo(dtype).eps)
    alive = w > 0
    state = dict(
        n=w,
        mean=Z,
        W=jnp.zeros((N, D, D), dtype),
        trace=jnp.zeros((N,), dtype),
        T=_term(w, jnp.zeros((N, D, D), dtype), jnp.zeros((N,), dtype), alpha, False),
    )
    C = jax.lax.map(lambda i: _merge_costs(state, i, alpha), jnp.arange(N))  # (N, N), once
    labels = jnp.where(alive, jnp.arange(N), -1).astype(jnp.int32)
    carry = dict(
        state,
        best=jnp.min(C, axis=1),
        partner=jnp.argmin(C, axis=1).astype(jnp.int32),
        stale=jnp.zeros((N,), bool),
        labels=labels,
        partitions=jnp.broadcast_to(labels, (K_max, N)),
        clusters=jnp.sum(alive).astype(jnp.int32),
    )

    def settle(c):
        """Costs computed again for the cheapest-looking cluster until its
        best is exact: a stale best is a lower bound (module doc)."""

        def refresh(c):
            a = jnp.argmin(c["best"])
            costs = _merge_costs(c, a, alpha)
            return dict(c, best=c["best"].at[a].set(jnp.min(costs)),
                        partner=c["partner"].at[a].set(jnp.argmin(costs).astype(jnp.int32)), stale=c["stale"].at[a].set(False))

        return jax.lax.while_loop(lambda c: c["stale"][jnp.argmin(c["best"])], refresh, c)

    def merge(carry):
        carry = settle(carry)
        a = jnp.argmin(carry["best"]).astype(jnp.int32)
        b = carry["partner"][a]
        i, j = jnp.minimum(a, b), jnp.maximum(a, b)
        cost = carry["best"][a]
        s = {k: carry[k] for k in ("n", "mean", "W", "trace", "T")}
        n_ij, mean_ij, W_ij, trace_ij = _union(*(s[k][i] for k in ("n", "mean", "W", "trace")),
                                               *(s[k][j] for k in ("n", "mean", "W", "trace")))
        s = dict(
            n=s["n"].at[i].set(n_ij).at[j].set(0),
            mean=s["mean"].at[i].set(mean_ij),
            W=s["W"].at[i].set(W_ij),
            trace=s["trace"].at[i].set(trace_ij),
            T=s["T"].at[i].set(cost + s["T"][i] + s["T"][j]).at[j].set(0),
        )
        row = _merge_costs(s, i, alpha)
        best, partner = carry["best"], carry["partner"]
        # Only costs with i changed (and j's are gone). A cluster for which
        # i is now cheaper than its best has i as its exact partner; one
        # whose partner was i or j keeps its best as a lower bound, marked
        # stale, and ``settle`` computes its costs when it comes first.
        closer = row < best
        stale = (carry["stale"] | ((partner == i) | (partner == j))) & ~closer
        best = jnp.where(closer, row, best).at[i].set(jnp.min(row)).at[j].set(jnp.inf)
        partner = jnp.where(closer, i, partner).at[i].set(jnp.argmin(row).astype(jnp.int32))
        stale = stale.at[i].set(False).at[j].set(False)
        labels = jnp.where(carry["labels"] == j, i, carry["labels"])
        clusters = carry["clusters"] - 1
        partitions = carry["partitions"].at[jnp.clip(clusters - 1, 0, K_max - 1)].set(labels)
        carry = dict(s, best=best, partner=partner, stale=stale, labels=labels, partitions=partitions, clusters=clusters)
        return carry, (jnp.stack([i, j]), cost)

    def step(carry, _):
        done = carry["clusters"] <= 1
        return jax.lax.cond(
            done,
            lambda c: (c, (jnp.full((2,), -1, jnp.int32), jnp.asarray(jnp.inf, dtype))),
            merge,
            carry,
        )

    carry, (merges, costs) = jax.lax.scan(step, carry, length=N - 1)
    return carry["partitions"], merges, costs


def partition_labels(partition, K_max: int):
    """(N,) components 0, 1, ... of a partition (a row of ``agglomerate``'s,
    at most K_max clusters), numbered in the order of each cluster's
    smallest sample index; -1 stays -1."""
    N = partition.shape[0]
    ids = jnp.unique(jnp.where(partition >= 0, partition, N), size=K_max + 1, fill_value=N)
    return jnp.where(partition >= 0, jnp.searchsorted(ids, partition), -1).astype(jnp.int32)
