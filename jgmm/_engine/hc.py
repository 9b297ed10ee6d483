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
evenly strided subsample; the first E-step assigns the rest).

The costs of all pairs are kept in an (N, N) matrix C, in closed form at
the start (two samples' scatter has rank one). A merge computes the costs
of the merged cluster with every other (|W| only for unions of weight
above D, a chunk of them at a time) into its row and column of C, and each
cluster keeps its cheapest partner; a cluster whose partner was merged
keeps its old best as a lower bound and reads its row of C again only when
that bound comes first. A step is O(N D³) at most, not a search over all
N² pairs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

HC_SAMPLE = 2000
BETA = 1.0
CHUNK = 8192  # entries of the scatters of the unions whose |W| one pass computes


def svd_transform(X, w):
    """mclust's "SVD" transform of (N, D) data with weights w (N,): centred,
    scaled to unit standard deviation, rotated to the principal axes V of
    the scaled data Z = U S Vᵀ and scaled by S^(-1/2): Z V S^(-1/2). V and
    S² are the eigenvectors and eigenvalues of Zᵀ diag(w) Z (an eigh of a
    D x D matrix compiles faster than the SVD of Z; the costs do not depend
    on the order or signs of the axes). Axes of relative variance below
    the rounding (a constant feature) become 0."""
    n = jnp.sum(w)
    mean = w @ X / n
    centred = X - mean
    sd = jnp.sqrt(w @ (centred * centred) / (n - 1))
    Z = jnp.where(sd > 0, centred / jnp.where(sd > 0, sd, 1), 0)
    S2, V = jnp.linalg.eigh((Z * w[:, None]).T @ Z)
    kept = S2 > jnp.finfo(Z.dtype).eps * Z.shape[1] * S2[-1]
    return (Z @ V) * jnp.where(kept, jnp.where(kept, S2, 1) ** -0.25, 0)


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


def _term(n, trace, log_det, alpha, D: int):
    """t(C) (module doc) of clusters of weight n (...), tr W and log |W|
    (read only where n > D); 0 for n = 0."""
    safe_n = jnp.where(n > 0, n, 1)
    base = jnp.log(BETA * (trace + alpha) / safe_n)
    base = jnp.where(n > D, jnp.logaddexp(log_det - D * jnp.log(safe_n), base), base)
    return jnp.where(n > 0, n * base, 0)


def _union(n_i, mean_i, trace_i, n, mean, trace):
    """Weight, mean and tr W of cluster i (the ``_i`` arguments) merged with
    the clusters of the others (leading axes broadcast), and the weight
    c = n_i n / (n_i + n) of the union's between-cluster scatter c d dᵀ,
    d = mean - mean_i."""
    n_union = n_i + n
    safe = jnp.where(n_union > 0, n_union, 1)
    d = mean - mean_i
    c = n_i * n / safe
    mean_union = (n_i * mean_i + n[..., None] * mean) / safe[..., None]
    return n_union, mean_union, trace + trace_i + c * jnp.sum(d * d, -1), c


def _union_scatter(W_i, mean_i, W, mean, c):
    """(..., D, D) the scatter of cluster i (W_i, mean_i) merged with the
    others (W, mean, c of ``_union``; leading axes broadcast)."""
    d = mean - mean_i
    return W + W_i + c[..., None, None] * d[..., :, None] * d[..., None, :]


def _min(x):
    """x's minimum and its first index (int32), by two plain reductions
    (faster on CPU than ``jnp.argmin``'s paired one)."""
    m = jnp.min(x)
    return m, jnp.min(jnp.where(x == m, jnp.arange(x.shape[0], dtype=jnp.int32), x.shape[0]))


def _singleton_costs(w, Z, alive, alpha):
    """(N, N) the cost of merging each pair of samples (inf on the diagonal
    and for rows of weight 0), in closed form: a pair's scatter c d dᵀ has
    rank one, so |W| = 0 unless D = 1."""
    N, D = Z.shape
    n_union, _, trace_union, c = _union(w[:, None], Z[:, None], 0, w[None], Z[None], 0)
    log_det = jnp.log(trace_union) if D == 1 else -jnp.inf
    T = _term(w, 0, -jnp.inf, alpha, D)
    cost = _term(n_union, trace_union, log_det, alpha, D) - (T[:, None] + T[None])
    pair = alive[:, None] & alive[None] & ~jnp.eye(N, dtype=bool)
    return jnp.where(pair, cost, jnp.inf), T


def _merge_costs(state, i, alpha):
    """(N,) the cost of merging cluster i with each cluster (inf for itself
    and for clusters that are gone). |W| of a union is computed only where
    its weight exceeds D, ``CHUNK`` unions at a time."""
    n, mean, W, trace, T = state["n"], state["mean"], state["W"], state["trace"], state["T"]
    N, D = mean.shape
    n_union, _, trace_union, c = _union(n[i], mean[i], trace[i], n, mean, trace)
    alive = (n > 0) & (n[i] > 0) & (jnp.arange(N) != i)
    need = alive & (n_union > D)
    chunk = min(max(CHUNK // D**2, 32), N)
    position = jnp.cumsum(need, dtype=jnp.int32)  # the q-th union needing |W| is the first with q

    def log_dets(k, log_det):
        at = jnp.searchsorted(position, k * chunk + jnp.arange(1, chunk + 1, dtype=jnp.int32), method="scan_unrolled")
        safe = jnp.minimum(at, N - 1)
        W_union = _union_scatter(W[i], mean[i], W[safe], mean[safe], c[safe])
        return log_det.at[at].set(_log_det_psd(W_union), mode="drop")

    n_chunks = (position[-1] + chunk - 1) // chunk
    log_det = jax.lax.fori_loop(0, n_chunks, log_dets, jnp.full((N,), -jnp.inf, mean.dtype))
    term = _term(n_union, trace_union, log_det, alpha, D)
    return jnp.where(alive, term - (T[i] + T), jnp.inf)


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
    C, T = _singleton_costs(w, Z, alive, alpha)
    labels = jnp.where(alive, jnp.arange(N), -1).astype(jnp.int32)
    carry = dict(
        n=w,
        mean=Z,
        W=jnp.zeros((N, D, D), dtype),
        trace=jnp.zeros((N,), dtype),
        T=T,
        C=C,
        best=jnp.min(C, axis=1),
        partner=jax.vmap(_min)(C)[1],
        stale=jnp.zeros((N,), bool),
        labels=labels,
        partitions=jnp.broadcast_to(labels, (K_max, N)),
        clusters=jnp.sum(alive).astype(jnp.int32),
        merged=jnp.int32(0),
        merges=jnp.full((N - 1, 2), -1, jnp.int32),
        costs=jnp.full((N - 1,), jnp.inf, dtype),
    )

    def settle(best, partner, stale, C):
        """The cheapest-looking cluster, once its best is exact: a stale
        best is a lower bound, read again from its row of C (module doc)."""

        def refresh(c):
            best, partner, stale, a = c
            m, p = _min(C[a])
            best = best.at[a].set(m)
            return best, partner.at[a].set(p), stale.at[a].set(False), _min(best)[1]

        return jax.lax.while_loop(lambda c: c[2][c[3]], refresh, (best, partner, stale, _min(best)[1]))

    def merge(carry):
        best, partner, stale, a = settle(carry["best"], carry["partner"], carry["stale"], carry["C"])
        b = partner[a]
        i, j = jnp.minimum(a, b), jnp.maximum(a, b)
        cost = best[a]
        s = {k: carry[k] for k in ("n", "mean", "W", "trace", "T")}
        n_ij, mean_ij, trace_ij, c_ij = _union(*(s[k][i] for k in ("n", "mean", "trace")),
                                               *(s[k][j] for k in ("n", "mean", "trace")))
        s = dict(
            n=s["n"].at[i].set(n_ij).at[j].set(0),
            mean=s["mean"].at[i].set(mean_ij),
            W=s["W"].at[i].set(_union_scatter(s["W"][i], s["mean"][i], s["W"][j], s["mean"][j], c_ij)),
            trace=s["trace"].at[i].set(trace_ij),
            T=s["T"].at[i].set(cost + s["T"][i] + s["T"][j]).at[j].set(0),
        )
        row = _merge_costs(s, i, alpha)
        C = carry["C"].at[i].set(row).at[:, i].set(row).at[j].set(jnp.inf).at[:, j].set(jnp.inf)
        # Only costs with i changed (and j's are gone). A cluster for which
        # i is now cheaper than its best has i as its exact partner; one
        # whose partner was i or j keeps its best as a lower bound, marked
        # stale, and ``settle`` reads its row of C when it comes first.
        closer = row < best
        stale = (stale | ((partner == i) | (partner == j))) & ~closer
        row_min, row_partner = _min(row)
        best = jnp.where(closer, row, best).at[i].set(row_min).at[j].set(jnp.inf)
        partner = jnp.where(closer, i, partner).at[i].set(row_partner)
        stale = stale.at[i].set(False).at[j].set(False)
        labels = jnp.where(carry["labels"] == j, i, carry["labels"])
        clusters = carry["clusters"] - 1
        partitions = carry["partitions"].at[jnp.clip(clusters - 1, 0, K_max - 1)].set(labels)
        step = carry["merged"]
        return dict(s, C=C, best=best, partner=partner, stale=stale, labels=labels, partitions=partitions,
                    clusters=clusters, merged=step + 1, merges=carry["merges"].at[step].set(jnp.stack([i, j])),
                    costs=carry["costs"].at[step].set(cost))

    carry = jax.lax.while_loop(lambda c: c["clusters"] > 1, merge, carry)
    return carry["partitions"], carry["merges"], carry["costs"]


def partition_labels(partition, K_max: int):
    """(N,) components 0, 1, ... of a partition (a row of ``agglomerate``'s,
    at most K_max clusters), numbered in the order of each cluster's
    smallest sample index; -1 stays -1."""
    N = partition.shape[0]
    ids = jnp.unique(jnp.where(partition >= 0, partition, N), size=K_max + 1, fill_value=N)
    return jnp.where(partition >= 0, jnp.searchsorted(ids, partition), -1).astype(jnp.int32)
