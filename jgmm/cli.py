"""The ``jgmm`` command line: demo, fit, predict, score.

Errors in what the user gave (files, cells, arguments) print one line naming
the problem and exit with code 2, without a traceback. Compiled programs are
kept in JAX's persistent compilation cache (``JGMM_CACHE_DIR``, default
``~/.cache/jgmm``; set it to an empty string to switch the cache off), so a
second run with the same shapes skips compilation.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from jgmm._adapters.data_files import DataError, read_data
from jgmm._adapters.model_files import atomic_write, check_directory
from jgmm._engine.init import INIT_METHODS
from jgmm._maths.families import SCIKIT_LEARN, accepted_names, canonical_name, family, family_names
from jgmm._maths.validation import MISSING

PROGRESS_EVERY = 10


def format_mixture(params, X, status=None, n_iter=None, missing="error") -> str:
    """A readable report of fitted parameters on data X (N, D); ``missing``
    as in ``jgmm.log_prob``."""
    import jgmm

    weights = np.asarray(params.weights)
    means = np.asarray(params.means)
    covariances = np.asarray(family(params.covariance_type).per_component(params.covariances, params.n_components))
    N = np.shape(X)[0]
    log_likelihood = float(np.mean(np.asarray(jgmm.log_prob(params, X, missing))))
    lines = [
        f"Gaussian mixture: K = {params.n_components}, covariance_type = {params.covariance_type!r}, "
        f"N = {N}, D = {params.n_features}",
    ]
    if status is not None:
        name = status if isinstance(status, str) else jgmm.Status(int(status)).name
        lines.append(f"status: {name} after {int(n_iter)} iterations")
    lines += [
        f"mean log-likelihood: {log_likelihood:.6f}   total: {log_likelihood * N:.4f}",
        f"BIC: {float(jgmm.bic(params, X, missing)):.4f}   AIC: {float(jgmm.aic(params, X, missing)):.4f}   "
        f"ICL: {float(jgmm.icl(params, X, missing)):.4f}   "
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


# --------------------------------------------------------------------- helpers


def _k_range(text: str) -> range:
    """'3' -> 3..3, '1:8' -> 1..8 (inclusive)."""
    try:
        low, _, high = text.partition(":")
        low, high = int(low), int(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K or a range LOW:HIGH such as 1:8, got {text!r}") from None
    if not 1 <= low <= high:
        raise argparse.ArgumentTypeError(f"expected 1 <= LOW <= HIGH, got {text!r}")
    return range(low, high + 1)


def _families(text: str) -> tuple:
    """'full,VEV' -> the canonical names; 'all' -> every registered family."""
    if text.strip() == "all":
        return family_names()
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in accepted_names()]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown covariance type(s) {', '.join(unknown) or '(none)'}; choose from {','.join(accepted_names())} "
            "or all"
        )
    return tuple(dict.fromkeys(map(canonical_name, names)))


def _setup_jax(args):
    """64-bit mode, the compilation cache and the distributed system, before
    any computation."""
    import jax

    if getattr(args, "x64", False):
        jax.config.update("jax_enable_x64", True)
    cache = os.environ.get("JGMM_CACHE_DIR", str(Path.home() / ".cache" / "jgmm"))
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    if getattr(args, "distributed", False):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # collectives between CPU processes
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    return jax


def _progress(args) -> int:
    if args.progress is not None:
        return args.progress
    return PROGRESS_EVERY if sys.stderr.isatty() else 0


def _data(path, args) -> np.ndarray:
    X = read_data(path, args.missing)
    return X if args.x64 else X.astype(np.float32)


def _load_model(path):
    import jgmm

    try:
        return jgmm.load(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None


def _model_and_data(args):
    """The saved model and the data, checked against each other."""
    params = _load_model(args.model)
    X = _data(args.data, args)
    if X.shape[1] != params.n_features:
        raise DataError(
            f"{args.data}: has {X.shape[1]} columns, but the model in {args.model} was fitted on "
            f"{params.n_features}"
        )
    return params, X


def _select_and_report(X, args, name: str, split=None):
    """Select a model for X (N, D), print the table and the chosen model.
    ``split``: X's rows as ``jgmm.shard`` placed them, with their weights,
    to fit instead of X (several processes); only process 0 reports."""
    import jax

    import jgmm

    data, weights = split or (X, None)
    selection = jgmm.select(
        jax.random.key(args.seed), data, args.k, args.covariance_type, n_init=args.n_init, init=args.init,
        criterion=args.criterion, max_iter=args.max_iter, tol=args.tol, reg_covar=args.reg_covar,
        progress=_progress(args), sample_weight=weights, missing=args.missing,
    )
    if jax.process_index() != 0:
        return selection
    print(selection.table)
    family, K = selection.best
    row = selection.to_dict()
    chosen = (row["covariance_type"] == family) & (row["n_components"] == K)
    print(f"\nchosen by {args.criterion.upper()}: covariance_type={family!r}, K={K}")
    print(format_mixture(selection.best_params, X, row["status"][chosen][0], row["n_iter"][chosen][0], args.missing))
    if args.plot:
        _plots(selection, X, args.plot, name)
    return selection


def _plots(selection, X, prefix: str, name: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import jgmm

    figures = {}
    ax = selection.plot()
    ax.set_title(f"{name}: {selection.criterion.upper()} by K and covariance family")
    figures["criterion"] = ax.figure
    # the rows with every feature observed
    figures["mixture"] = jgmm.plot_mixture(selection.best_params, X[~np.isnan(X).any(axis=1)]).figure
    for kind, figure in figures.items():
        path = Path(f"{prefix}_{kind}.png")
        atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=120, bbox_inches="tight"))
        plt.close(figure)
        print(f"wrote {path}", file=sys.stderr)


# -------------------------------------------------------------------- commands


def _demo(args) -> int:
    import jgmm

    X = jgmm.load_faithful().astype(np.float64 if args.x64 else np.float32)
    print(f"Old Faithful eruptions: {X.shape[0]} samples, columns [eruption minutes, waiting minutes]\n")
    _select_and_report(X, args, "Old Faithful")
    return 0


def _fit(args) -> int:
    import jax

    import jgmm

    for path in [args.out] + ([f"{args.plot}_criterion.png"] if args.plot else []):
        check_directory(path)  # before the fit, not after it
    X = _data(args.data, args)
    split = None
    if args.distributed:  # each process fits its share of the rows
        split = jgmm.shard(np.array_split(X, jax.process_count())[jax.process_index()])
    selection = _select_and_report(X, args, Path(args.data).name, split)
    if jax.process_index() == 0:
        jgmm.save(args.out, selection.best_params)
        print(f"saved the chosen model to {args.out}", file=sys.stderr)
    return 0


def _predict(args) -> int:
    import jgmm

    if args.out is not None:
        check_directory(args.out)
    params, X = _model_and_data(args)
    if args.proba:
        values = np.asarray(jgmm.predict_proba(params, X, args.missing))
        header, fmt = ",".join(f"p{k}" for k in range(params.n_components)), "%.8g"
    else:
        values, header, fmt = np.asarray(jgmm.predict(params, X, args.missing))[:, None], "label", "%d"
    if args.out is None:
        np.savetxt(sys.stdout, values, fmt=fmt, delimiter=",", header=header, comments="")
    else:
        atomic_write(args.out, lambda file: np.savetxt(file, values, fmt=fmt, delimiter=",", header=header, comments=""))
    return 0


def _score(args) -> int:
    import jgmm

    params, X = _model_and_data(args)
    log_likelihood = float(np.mean(np.asarray(jgmm.log_prob(params, X, args.missing))))
    print(f"mean log-likelihood: {log_likelihood:.6f}")
    print(f"total log-likelihood: {log_likelihood * X.shape[0]:.4f}")
    print(f"BIC: {float(jgmm.bic(params, X, args.missing)):.4f}")
    print(f"AIC: {float(jgmm.aic(params, X, args.missing)):.4f}")
    return 0


# ---------------------------------------------------------------------- parser


def _add_common(parser, seed=True):
    parser.add_argument("--x64", action="store_true", help="compute in float64 (default float32)")
    parser.add_argument("--missing", choices=MISSING, default="error",
                        help="empty or NaN cells: 'error' (default) refuses them; 'marginalize' treats them as "
                             "missing values, each row counting by its observed features")
    if seed:
        parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _add_selection(parser, k_default: str, tol: float = 1e-3, max_iter: int = 100):
    parser.add_argument("--k", type=_k_range, default=_k_range(k_default),
                        help=f"number of components, K or LOW:HIGH (default {k_default})")
    parser.add_argument("--covariance-type", type=_families, default=tuple(f.name for f in SCIKIT_LEARN),
                        help="comma-separated families to try, such as EVE,VVE, or all (mclust's 14); "
                             "default full,tied,diag,spherical")
    parser.add_argument("--n-init", type=int, default=5, help="restarts per (family, K), run batched (default 5)")
    parser.add_argument("--init", choices=INIT_METHODS, default="hc+kmeans",
                        help="how restarts start: mclust's hierarchical hc, k-means, random, or hc+kmeans "
                             "(default: the first restart hc, the others k-means)")
    parser.add_argument("--criterion", choices=("bic", "aic", "icl"), default="bic", help="model choice (default bic)")
    parser.add_argument("--max-iter", type=int, default=max_iter, help=f"EM iterations at most (default {max_iter})")
    parser.add_argument("--tol", type=float, default=tol, help=f"convergence tolerance (default {tol:g})")
    parser.add_argument("--reg-covar", type=float, default=1e-6, help="added to covariance diagonals (default 1e-6)")
    parser.add_argument("--plot", metavar="PREFIX",
                        help="write PREFIX_criterion.png and PREFIX_mixture.png (needs matplotlib)")
    parser.add_argument("--progress", type=int, metavar="N",
                        help=f"report every N EM iterations on stderr (default {PROGRESS_EVERY} on a terminal, "
                             "else off; 0 silences)")
    _add_common(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jgmm", description="Gaussian mixture models fitted by EM in JAX.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="choose and fit a mixture for the bundled Old Faithful data",
                               description="Model selection on the bundled Old Faithful data (272 × 2).")
    _add_selection(demo, "1:6", tol=1e-5, max_iter=500)  # converged as far as mclust's fits: its BIC
    demo.set_defaults(run=_demo)

    fit = commands.add_parser("fit", help="choose a mixture for DATA by BIC/AIC and save it",
                              description="Fit every (covariance family, K), print the table and the chosen "
                                          "model, save it.")
    fit.add_argument("data", help="samples: .csv (header row optional), .npy or .npz")
    fit.add_argument("--out", default="model.npz", help="where to save the chosen model (default model.npz)")
    _add_selection(fit, "1:8")
    cluster = fit.add_argument_group(
        "several processes", "One process per host, each fitting its share of DATA's rows (jax.distributed); "
        "under SLURM, Open MPI or on a Cloud TPU slice the other options are detected."
    )
    cluster.add_argument("--distributed", action="store_true", help="join the other processes first")
    cluster.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address")
    cluster.add_argument("--num-processes", type=int, metavar="P", help="how many processes")
    cluster.add_argument("--process-id", type=int, metavar="I", help="this process, 0..P-1")
    fit.set_defaults(run=_fit)

    predict = commands.add_parser("predict", help="label DATA with a saved model",
                                  description="Most probable component of each row (or all probabilities).")
    predict.add_argument("model", help="a model saved by 'jgmm fit'")
    predict.add_argument("data", help="samples: .csv, .npy or .npz")
    predict.add_argument("--proba", action="store_true", help="write component probabilities instead of labels")
    predict.add_argument("--out", help="CSV file to write (default: standard output)")
    _add_common(predict, seed=False)
    predict.set_defaults(run=_predict)

    score = commands.add_parser("score", help="log-likelihood, BIC and AIC of DATA under a saved model")
    score.add_argument("model", help="a model saved by 'jgmm fit'")
    score.add_argument("data", help="samples: .csv, .npy or .npz")
    _add_common(score, seed=False)
    score.set_defaults(run=_score)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _setup_jax(args)
        return args.run(args)
    except BrokenPipeError:  # e.g. piped into head: stop quietly
        sys.stdout = open(os.devnull, "w")
        return 0
    except (ValueError, OSError) as err:
        print(f"jgmm {args.command}: error: {err}", file=sys.stderr)
        return 2
    except ImportError as err:
        print(f"jgmm {args.command}: error: {err.name or err} is needed for this; "
              "install it with pip install 'jgmm[plot]'", file=sys.stderr)
        return 2
