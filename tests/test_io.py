import zipfile

import jax
import numpy as np
import pytest
from conftest import FAMILIES, blobs

import jgmm
from jgmm._adapters import model_files as _io


def fitted(covariance_type, K=3):
    X, _, _ = blobs(N=200, D=3)
    return jgmm.fit(jax.random.key(0), X, K, covariance_type).params


def write_npz(path, **arrays):
    with open(path, "wb") as file:
        np.savez(file, **arrays)


def model_arrays(params):
    return dict(
        format=np.array(_io.FORMAT), version=np.array(_io.VERSION),
        covariance_type=np.array(params.covariance_type),
        weights=np.asarray(params.weights), means=np.asarray(params.means), prec_chol=np.asarray(params.prec_chol),
    )


@pytest.mark.parametrize("covariance_type", FAMILIES)
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_round_trip_is_exact(tmp_path, covariance_type, precision):
    with jax.enable_x64(precision == "float64"):
        params = fitted(covariance_type)
        path = tmp_path / "model.npz"
        jgmm.save(path, params)
        loaded = jgmm.load(path)
    assert loaded.covariance_type == covariance_type
    for name in ("weights", "means", "prec_chol"):
        saved, read = np.asarray(getattr(params, name)), np.asarray(getattr(loaded, name))
        assert read.dtype == saved.dtype == np.dtype(precision)
        np.testing.assert_array_equal(read, saved)


def test_file_holds_no_pickled_objects(tmp_path):
    path = tmp_path / "model.npz"
    jgmm.save(path, fitted("diag"))
    with zipfile.ZipFile(path) as archive:
        names = sorted(archive.namelist())
    assert names == sorted(f"{name}.npy" for name in model_arrays(fitted("diag")))
    with np.load(path, allow_pickle=False) as data:
        assert all(data[name].dtype != object for name in data.files)


def tamper(params, **changes):
    arrays = model_arrays(params)
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(format=np.array("something else")), "format is 'something else'"),
        (dict(version=np.array(99)), "format version 99 is not supported"),
        (dict(covariance_type=np.array("banana")), "unknown covariance_type 'banana'"),
        (dict(covariance_type=np.array("VEE")), "its covariances are not of the 'VEE' family's form"),
        (dict(weights=None), "missing weights"),
        (dict(weights=np.array([0.5, 0.5, 0.5], np.float32)), "params.weights must be non-negative and sum to 1"),
        (dict(weights=np.array([1.5, -0.25, -0.25], np.float32)), "params.weights must be non-negative"),
        (dict(means=np.full((3, 3), np.nan, np.float32)), "params.means contains NaN or infinity"),
        (dict(means=np.zeros((3, 2), np.float32)), "prec_chol .* must have shape \\(3, 2, 2\\)"),
        (dict(weights=np.array(["a", "b", "c"])), "weights has dtype <U1"),
        (dict(prec_chol=np.ones((3, 3, 3), np.float32)), "not triangular with a positive diagonal"),
        (dict(prec_chol=-np.broadcast_to(np.eye(3, dtype=np.float32), (3, 3, 3))), "positive diagonal"),
    ],
)
def test_tampered_files_are_rejected_with_the_reason(tmp_path, changes, message):
    path = tmp_path / "model.npz"
    write_npz(path, **tamper(fitted("full"), **changes))
    with pytest.raises(ValueError, match=message) as info:
        jgmm.load(path)
    assert str(path) in str(info.value)


def test_truncated_file_is_rejected(tmp_path):
    path = tmp_path / "model.npz"
    jgmm.save(path, fitted("full"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a valid jgmm model file: cannot read it as an .npz archive"):
        jgmm.load(path)


def test_foreign_files_are_rejected(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="it is not an .npz archive"):
        jgmm.load(text)
    single = tmp_path / "array.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ValueError, match="it is not an .npz archive"):
        jgmm.load(single)
    other = tmp_path / "other.npz"
    write_npz(other, a=np.zeros(3))
    with pytest.raises(ValueError, match="missing format, version, covariance_type, weights, means, prec_chol"):
        jgmm.load(other)


def test_pickled_objects_are_never_loaded(tmp_path):
    path = tmp_path / "evil.npz"
    arrays = model_arrays(fitted("spherical"))
    arrays["weights"] = np.array([object()] * 3, dtype=object)
    np.savez(path, **arrays)  # numpy pickles object arrays
    with pytest.raises(ValueError, match="cannot read it as an .npz archive"):
        jgmm.load(path)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        jgmm.load(tmp_path / "absent.npz")


def test_save_into_a_missing_directory_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent: no such directory, so model.npz cannot be written there"):
        jgmm.save(tmp_path / "absent" / "model.npz", fitted("diag"))


def test_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    jgmm.save(path, fitted("diag"))
    before = path.read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        jgmm.save(path, fitted("diag"))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]
