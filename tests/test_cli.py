"""The jgmm command line, run as a real process."""

import os
import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pytest

import jgmm


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("jax_cache")


@pytest.fixture
def run(cache_dir, tmp_path):
    def run(*args):
        env = {**os.environ, "JGMM_CACHE_DIR": str(cache_dir)}
        return subprocess.run(
            [sys.executable, "-m", "jgmm", *map(str, args)], capture_output=True, text=True, timeout=300,
            env=env, cwd=tmp_path,
        )

    return run


@pytest.fixture
def faithful_csv(tmp_path):
    path = tmp_path / "faithful.csv"
    np.savetxt(path, jgmm.load_faithful(), delimiter=",", header="eruptions,waiting", comments="")
    return path


def test_demo_chooses_mclusts_model_for_old_faithful(run, cache_dir):
    out = run("demo")
    assert out.returncode == 0, out.stderr
    assert "Old Faithful" in out.stdout and "mclust_bic" in out.stdout
    # R's mclust chooses EEE (tied) with 3 components, BIC -2314.386 in its sign convention.
    assert "chosen by BIC: covariance_type='tied', K=3" in out.stdout
    lines = out.stdout.splitlines()
    header = next(line.split() for line in lines if line.split()[:1] == ["covariance_type"])
    row = next(line.split() for line in lines if line.split()[:2] == ["tied", "3"])
    # At least mclust's fit (its EM stops a little earlier), and no more than that apart.
    assert -2314.386 - 0.01 <= float(row[header.index("mclust_bic")]) <= -2314.386 + 0.1
    assert "status: CONVERGED" in out.stdout and "component 2: weight" in out.stdout
    assert any(cache_dir.iterdir()), "the persistent compilation cache was not written"


def test_fit_predict_score_round_trip(run, faithful_csv, tmp_path):
    out = run("fit", faithful_csv, "--k", "1:3", "--covariance-type", "full,diag", "--out", "model.npz",
              "--plot", "pic", "--progress", "1")
    assert out.returncode == 0, out.stderr
    assert "chosen by BIC" in out.stdout and "iteration 1, log-likelihood" in out.stderr
    params = jgmm.load(tmp_path / "model.npz")
    assert params.covariance_type in ("full", "diag") and params.weights.dtype == np.float32
    for kind in ("criterion", "mixture"):
        png = (tmp_path / f"pic_{kind}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000

    X = jgmm.load_faithful().astype(np.float32)
    out = run("predict", "model.npz", faithful_csv, "--out", "labels.csv")
    assert out.returncode == 0, out.stderr
    labels = np.loadtxt(tmp_path / "labels.csv", skiprows=1, dtype=int)
    np.testing.assert_array_equal(labels, np.asarray(jgmm.predict(params, X)))
    out = run("predict", "model.npz", faithful_csv, "--proba")
    assert out.stdout.splitlines()[0] == ",".join(f"p{k}" for k in range(params.n_components))
    proba = np.loadtxt(out.stdout.splitlines()[1:], delimiter=",", ndmin=2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)

    out = run("score", "model.npz", faithful_csv)
    assert out.returncode == 0, out.stderr
    reported = float(out.stdout.split("mean log-likelihood:")[1].split()[0])
    assert reported == pytest.approx(float(np.mean(jgmm.log_prob(params, X))), rel=1e-5)


def test_mclusts_families_by_name_and_all(run, faithful_csv, tmp_path):
    out = run("fit", faithful_csv, "--k", "1:2", "--covariance-type", "all", "--n-init", "1", "--criterion", "icl",
              "--out", "model.npz")
    assert out.returncode == 0, out.stderr
    table = [line.split()[0] for line in out.stdout.splitlines() if line.split()[1:2] in (["1"], ["2"])]
    assert set(table) == set(jgmm.family_names()) and len(table) == 28
    assert "chosen by ICL" in out.stdout and "ICL:" in out.stdout
    out = run("fit", faithful_csv, "--k", "2", "--covariance-type", "EVE,VVE", "--init", "hc", "--out", "two.npz")
    assert out.returncode == 0, out.stderr
    assert jgmm.load(tmp_path / "two.npz").covariance_type in ("EVE", "VVE")


def test_missing_cells_are_refused_or_marginalized(run, faithful_csv, tmp_path):
    lines = faithful_csv.read_text().splitlines()
    lines[5] = "," + lines[5].split(",")[1]  # line 6: eruptions missing
    lines[9] = lines[9].split(",")[0] + ","  # line 10: waiting missing
    faithful_csv.write_text("\n".join(lines) + "\n")
    out = run("fit", faithful_csv, "--k", "2")
    assert out.returncode == 2 and "line 6, column 1: is empty" in out.stderr and "--missing marginalize" in out.stderr
    out = run("fit", faithful_csv, "--k", "2:3", "--covariance-type", "tied", "--missing", "marginalize")
    assert out.returncode == 0, out.stderr
    assert "chosen by BIC: covariance_type='tied'" in out.stdout
    labels = run("predict", "model.npz", faithful_csv, "--missing", "marginalize")
    assert labels.returncode == 0 and len(labels.stdout.splitlines()) == 1 + 272


def test_fit_reads_npy_and_npz_and_x64_saves_float64(run, tmp_path):
    X = jgmm.load_faithful()
    np.save(tmp_path / "x.npy", X)
    np.savez(tmp_path / "x.npz", X=X)
    for name in ("x.npy", "x.npz"):
        out = run("fit", name, "--k", "2", "--covariance-type", "spherical", "--x64", "--out", f"{name}.model.npz")
        assert out.returncode == 0, out.stderr
        assert jgmm.load(tmp_path / f"{name}.model.npz").means.dtype == np.float64


@pytest.mark.parametrize("command", ["demo", "fit", "predict", "score"])
def test_help_for_each_command(run, command):
    out = run(command, "--help")
    assert out.returncode == 0 and "usage: jgmm " + command in out.stdout


@pytest.mark.parametrize(
    "files, args, message",
    [
        ({"d.csv": "a,b\n1,2\n3,x\n"}, ("fit", "d.csv"), "d.csv: line 3, column 2: 'x' is not a number"),
        ({"d.csv": "1,2\n3,nan\n"}, ("fit", "d.csv"), "d.csv: line 2, column 2: value is NaN"),
        ({"d.csv": "1,2\n,2\n"}, ("fit", "d.csv"), "d.csv: line 2, column 1: is empty (missing value; pass --missing marginalize"),
        ({}, ("fit", "absent.csv"), "absent.csv: no such file"),
        ({"m.npz": "not a model"}, ("score", "m.npz", "d.csv"), "m.npz: not a valid jgmm model file"),
        ({"d.csv": "1,2,3\n4,5,6\n"}, ("score", "model.npz", "d.csv"),
         "d.csv: has 3 columns, but the model in model.npz was fitted on 2"),
        ({}, ("fit", "d.csv", "--k", "0:3"), "expected 1 <= LOW <= HIGH"),
        ({}, ("fit", "d.csv", "--covariance-type", "full,banana"), "unknown covariance type(s) banana"),
        ({"d.csv": "1,2\n3,4\n"}, ("predict", "model.npz", "d.csv", "--out", "absent/labels.csv"),
         "absent: no such directory, so labels.csv cannot be written there"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(run, tmp_path, files, args, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    params = jgmm.GMMParams(np.ones(1, np.float32), np.zeros((1, 2), np.float32), np.ones(1, np.float32), "spherical")
    jgmm.save(tmp_path / "model.npz", params)
    out = run(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert len([line for line in out.stderr.splitlines() if "error:" in line]) == 1


def test_one_feature_gets_a_density_plot(run, tmp_path):
    column = np.random.default_rng(0).normal(size=(200, 1)) + np.repeat([[-3.0], [3.0]], 100, axis=0)
    np.savetxt(tmp_path / "one.csv", column)
    out = run("fit", "one.csv", "--k", "1:3", "--covariance-type", "diag", "--plot", "pic")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "pic_mixture.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("args", [("--out", "absent/model.npz"), ("--plot", "absent/pic")])
def test_fit_refuses_a_missing_output_directory_before_fitting(run, faithful_csv, args):
    out = run("fit", faithful_csv, "--k", "1:2", *args)
    assert out.returncode == 2 and "absent: no such directory" in out.stderr
    assert out.stdout == "", "the fit ran before the output path was checked"


def test_console_script_is_declared():
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("jgmm") == "jgmm.cli:main"


def test_bundled_data_is_old_faithful():
    X = jgmm.load_faithful()
    assert X.shape == (272, 2)
    np.testing.assert_allclose(X[0], [3.6, 79.0])
    assert 1.5 < X[:, 0].min() and X[:, 0].max() < 5.2
