"""The README's Python examples (```python blocks) run as written; ```py blocks
are fragments that need a cluster."""

import re
from pathlib import Path

import matplotlib
import numpy as np

README = Path(__file__).parent.parent / "README.md"


def test_readme_python_examples_run(tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 3
    namespace = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["selection"].best == ("tied", 3)
    assert namespace["many"].log_likelihood.shape == (8,)
    assert abs(float(namespace["fit_and_score"](namespace["X"])) - float(namespace["many"].log_likelihood[0])) < 0.05
    assert (tmp_path / "model.npz").exists()
    assert namespace["result"].params.n_components == 2 and int(namespace["state"].n_steps) == 7
    assert namespace["online"].n_iter_ == 8
    assert namespace["boot"].replicates.means.shape[0] == 200 and namespace["dlogp_dX"].shape == (272, 2)
    assert namespace["dmean_dX"].shape == (272, 2) and np.all(np.isfinite(namespace["dmean_dX"]))
    assert namespace["per_group"].params.means.shape == (2, 2, 2) and np.all(namespace["per_group"].converged)
