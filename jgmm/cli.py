"""The ``jgmm`` command line."""

from __future__ import annotations

import argparse
import sys

import numpy as np


def format_mixture(result, X) -> str:
    """A readable report of a FitResult on data X (N, D)."""
    import jgmm

    params = result.params
    weights = np.asarray(params.weights)
    means = np.asarray(params.means)
    covariances = np.asarray(params.covariances)
    if params.covariance_type == "tied":
        covariances = np.broadcast_to(covariances, (params.n_components,) + covariances.shape)
    N = np.shape(X)[0]
    lines = [
        f"Gaussian mixture: K = {params.n_components}, covariance_type = {params.covariance_type!r}, "
        f"N = {N}, D = {params.n_features}",
        f"status: {jgmm.Status(int(result.status)).name} after {int(result.n_iter)} iterations",
        f"mean log-likelihood: {float(result.log_likelihood):.6f}   "
        f"total: {float(result.log_likelihood) * N:.4f}",
        f"BIC: {float(jgmm.bic(params, X)):.4f}   AIC: {float(jgmm.aic(params, X)):.4f}   "
        f"parameters: {jgmm.n_parameters(params)}",
    ]
    with np.printoptions(precision=4, suppress=True):
        for k in np.argsort(-weights):
            lines.append(f"component {k}: weight {weights[k]:.4f}")
            lines.append(f"  mean       {means[k]}")
            cov = covariances[k]
            label = "  " + {2: "covariance", 1: "variances", 0: "variance"}[cov.ndim].ljust(11)
            for i, row in enumerate(cov if cov.ndim == 2 else [cov]):
                lines.append((label if i == 0 else " " * len(label)) + str(row))
    return "\n".join(lines)


def _demo(args) -> int:
    import jax

    import jgmm

    X = jgmm.load_faithful()
    print(f"Old Faithful eruptions: {X.shape[0]} samples, columns [eruption minutes, waiting minutes]")
    result = jgmm.fit(
        jax.random.key(args.seed), X, args.k, args.covariance_type, n_init=args.n_init
    )
    print(format_mixture(result, X))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jgmm", description="Gaussian mixture models fitted by EM in JAX."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="fit the bundled Old Faithful data and print the mixture")
    demo.add_argument("--k", type=int, default=2, help="number of components (default 2)")
    demo.add_argument(
        "--covariance-type",
        default="full",
        choices=("full", "tied", "diag", "spherical"),
        help="covariance family (default full)",
    )
    demo.add_argument("--n-init", type=int, default=5, help="restarts, run batched (default 5)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(run=_demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ValueError as err:
        print(f"jgmm {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
