"""Old Faithful, K = 1..4, four families: jgmm and scikit-learn side by side.

Both fit in float64 with 5 restarts (different initialisations, so the fits
may differ where the likelihood has several optima). Prints one row per
(family, K): mean log-likelihood and BIC of each, and the difference.

    python experiments/faithful_vs_sklearn.py
"""

import warnings

import jax
from sklearn.mixture import GaussianMixture

import jgmm


def main():
    X = jgmm.load_faithful()
    print(f"{'family':<10} {'K':>2} {'jgmm logL':>11} {'sklearn logL':>13} {'jgmm BIC':>10} {'sklearn BIC':>12} {'status':>10}")
    with jax.enable_x64(True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for covariance_type in ("full", "tied", "diag", "spherical"):
            for K in range(1, 5):
                ours = jgmm.fit(jax.random.key(K), X, K, covariance_type, n_init=5)
                theirs = GaussianMixture(K, covariance_type=covariance_type, n_init=5, random_state=K).fit(X)
                print(
                    f"{covariance_type:<10} {K:>2} {float(ours.log_likelihood):>11.5f} {theirs.score(X):>13.5f} "
                    f"{float(jgmm.bic(ours.params, X)):>10.2f} {theirs.bic(X):>12.2f} "
                    f"{jgmm.Status(int(ours.status)).name:>10}"
                )


if __name__ == "__main__":
    main()
