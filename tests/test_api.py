"""The public API as a whole: one sorted list of names, every function typed."""

import inspect

import jax
import numpy as np
import pytest

import jgmm


def test_all_is_sorted_and_every_name_exists():
    assert list(jgmm.__all__) == sorted(jgmm.__all__)
    assert all(hasattr(jgmm, name) for name in jgmm.__all__)


@pytest.mark.parametrize("name", [n for n in jgmm.__all__ if inspect.isfunction(getattr(jgmm, n))])
def test_every_public_function_has_type_hints(name):
    signature = inspect.signature(getattr(jgmm, name))
    untyped = [p for p, v in signature.parameters.items() if v.annotation is inspect.Parameter.empty]
    assert not untyped, f"jgmm.{name}: parameters without a type hint: {untyped}"
    assert signature.return_annotation is not inspect.Signature.empty, f"jgmm.{name} has no return type"


def test_kmeans_is_the_name_of_seeding_with_lloyd_steps_and_the_old_spelling_works():
    X = np.random.default_rng(0).normal(size=(60, 2)).astype(np.float32)
    new = jgmm.fit(jax.random.key(0), X, 3, init="kmeans", max_iter=3)
    old = jgmm.fit(jax.random.key(0), X, 3, init="kmeans++", max_iter=3)
    default = jgmm.fit(jax.random.key(0), X, 3, max_iter=3)  # "hc+kmeans": with one restart, hc
    hc = jgmm.fit(jax.random.key(1), X, 3, init="hc", max_iter=3)
    np.testing.assert_array_equal(new.params.means, old.params.means)
    np.testing.assert_array_equal(hc.params.means, default.params.means)
    with pytest.raises(ValueError, match="'init' parameter must be a str among .*'kmeans'"):
        jgmm.fit(jax.random.key(0), X, 3, init="kmeans+")


def test_each_layer_imports_only_the_layers_below_it():
    import ast
    from pathlib import Path

    order = ["_compile", "_maths", "_engine", "_drivers", "_adapters"]
    package = Path(jgmm.__file__).parent
    upward = []
    for layer in order[1:]:
        for path in sorted((package / layer).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jgmm."):
                    target = node.module.split(".")[1]
                    if target in order and order.index(target) > order.index(layer):
                        upward.append(f"{layer}/{path.name} imports {node.module}")
    assert not upward, upward
