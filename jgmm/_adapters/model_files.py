"""``save`` and ``load``: fitted parameters as a validated ``.npz`` file.

The file holds plain arrays only (``allow_pickle=False`` on both sides, so
loading never runs code from the file): ``format`` ("jgmm.GMMParams"),
``version``, ``covariance_type``, ``weights``, ``means``, ``prec_chol``;
the covariances must be of the family's form (``Family.projected``).
Arrays keep their dtype, so a save/load round trip is exact. Writes go to a
temporary file in the same folder, renamed into place: an interrupted save
never leaves a half-written model.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from jgmm._maths.families import family, family_names
from jgmm._maths.params import GMMParams
from jgmm._maths.validation import check_param_values, check_params, in_family

FORMAT = "jgmm.GMMParams"
VERSION = 1
_FIELDS = ("weights", "means", "prec_chol")


def check_directory(path) -> Path:
    """``path`` as a Path whose directory exists (else FileNotFoundError)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: no such directory, so {path.name} cannot be written there.")
    return path


def atomic_write(path, write) -> None:
    """Call ``write(file)`` on a temporary binary file next to ``path``, then
    rename it to ``path`` (atomic on POSIX and Windows)."""
    path = check_directory(path)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(temporary, 0o666 & ~umask)  # as open() would create it, not mkstemp's 0600
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def save(path: str | os.PathLike, params: GMMParams) -> None:
    """Write ``params`` to ``path`` (an ``.npz`` file), atomically.

    Args:
      path: file name; written as given (numpy's ``.npz`` suffix is not added).
      params: GMMParams, e.g. ``jgmm.fit(...).params``.
    """
    check_params(params)
    arrays = {name: np.asarray(getattr(params, name)) for name in _FIELDS}
    atomic_write(
        path,
        lambda file: np.savez(
            file, format=np.array(FORMAT), version=np.array(VERSION),
            covariance_type=np.array(family(params.covariance_type).name), **arrays,
        ),
    )


class _Invalid(ValueError):
    pass


def load(path: str | os.PathLike) -> GMMParams:
    """Read parameters written by ``save``, checking everything read.

    Raises:
      FileNotFoundError: no such file.
      ValueError: not a jgmm model file (foreign, truncated or tampered
        with): unknown format or version, missing or malformed arrays,
        inconsistent shapes, non-finite values, weights off the simplex, or
        precision Cholesky factors that are not triangular with a positive
        diagonal. The message names the file and what is wrong.
    """
    path = Path(path)
    try:
        return _read(path)
    except _Invalid as err:
        raise ValueError(f"{path}: not a valid jgmm model file: {err}.") from None


def _read(path: Path) -> GMMParams:
    with open(path, "rb") as file:
        if file.read(4) != b"PK\x03\x04":
            raise _Invalid("it is not an .npz archive")
    try:
        data = np.load(path, allow_pickle=False)
        with data:
            contents = {name: data[name] for name in data.files}
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as err:
        if isinstance(err, _Invalid):
            raise
        raise _Invalid(f"cannot read it as an .npz archive ({err})") from None
    missing = [name for name in ("format", "version", "covariance_type") + _FIELDS if name not in contents]
    if missing:
        raise _Invalid(f"missing {', '.join(missing)}")
    if _text(contents["format"]) != FORMAT:
        raise _Invalid(f"format is {_text(contents['format'])!r}, expected {FORMAT!r}")
    version = contents["version"]
    if version.shape != () or not np.issubdtype(version.dtype, np.integer) or int(version) != VERSION:
        raise _Invalid(f"format version {_text(version)} is not supported (this jgmm reads version {VERSION})")
    covariance_type = _text(contents["covariance_type"])
    if covariance_type not in family_names():
        raise _Invalid(
            f"unknown covariance_type {covariance_type!r} (a family defined outside jgmm must be registered "
            "with jgmm.register_family before its models are loaded)"
        )
    arrays = {name: contents[name] for name in _FIELDS}
    for name, a in arrays.items():
        if not np.issubdtype(a.dtype, np.floating):
            raise _Invalid(f"{name} has dtype {a.dtype}, expected floating point")
    try:
        params = check_param_values(check_params(GMMParams(**arrays, covariance_type=covariance_type)))
    except ValueError as err:
        raise _Invalid(str(err).rstrip(".")) from None
    if not in_family(params):
        raise _Invalid(f"its covariances are not of the {covariance_type!r} family's form")
    return params


def _text(a: np.ndarray) -> str:
    """A 0-d array's value as text; anything else as numpy prints it."""
    return str(a[()]) if a.shape == () else np.array2string(a, threshold=8)
