"""Reading data files for the command line: .csv, .npy, .npz.

Every problem is a ``DataError`` naming the file and, where known, the line
and column, so the command line can print one line and exit.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A data file that cannot be used, with the reason."""


SUFFIXES = (".csv", ".npy", ".npz")


def read_data(path, missing: str = "error") -> np.ndarray:
    """(N, D) float64 samples from a .csv (header row optional), .npy or .npz file.

    A 1-D array is one feature (a column). An .npz file must hold one array,
    or one named ``X``. With ``missing="marginalize"``, empty CSV cells and
    NaN values are missing values (NaN).

    Raises:
      DataError: missing, unreadable or foreign file; non-numeric or infinite
        cells, and (unless ``missing="marginalize"``) empty or NaN cells (with
        line and column); ragged rows; empty data.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    line_numbers = None
    if suffix == ".csv":
        X, line_numbers = _read_csv(path, missing == "marginalize")
    elif suffix in (".npy", ".npz"):
        X = _read_numpy(path)
    else:
        raise DataError(f"{path}: unsupported file type {suffix or '(none)'!r}; use one of {', '.join(SUFFIXES)}")
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"{path}: expected a table of samples × features, got an array of shape {X.shape}")
    _check_finite(path, X, line_numbers, missing == "marginalize")
    return X


def _read_numpy(path: Path) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: cannot read it as a numpy {path.suffix} file ({err})") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            names = data.files
            if "X" in names:
                name = "X"
            elif len(names) == 1:
                name = names[0]
            else:
                raise DataError(f"{path}: holds arrays {names}; expected one array, or one named 'X'")
            try:
                data = data[name]
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
                raise DataError(f"{path}: cannot read array {name!r} ({err})") from None
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool) or np.iscomplexobj(data):
        raise DataError(f"{path}: holds {data.dtype} values, expected real numbers")
    return np.asarray(data, np.float64)


def _read_csv(path: Path, empty_is_nan: bool):
    """(N, D) values and the file's line number of each row; empty cells
    are NaN if ``empty_is_nan``."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:  # -sig: a byte-order mark is not data
            rows = list(csv.reader(file))
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: not a readable CSV text file ({err})") from None
    # Blank lines are skipped; a row of empty cells (",,") is a row of missing values.
    lines = [(number, row) for number, row in enumerate(rows, start=1) if len(row) > 1 or (row and row[0].strip())]
    if lines and not all(_is_number(cell) for cell in lines[0][1]):
        lines = lines[1:]  # a header row
    if not lines:
        raise DataError(f"{path}: no data rows")
    width = len(lines[0][1])
    values = np.empty((len(lines), width))
    for i, (number, row) in enumerate(lines):
        if len(row) != width:
            raise DataError(f"{path}: line {number} has {len(row)} columns, expected {width} like line {lines[0][0]}")
        for j, cell in enumerate(row):
            try:
                values[i, j] = np.nan if empty_is_nan and not cell.strip() else float(cell)
            except ValueError:
                what = (
                    "is empty (missing value; pass --missing marginalize to fit around it)"
                    if not cell.strip() else f"{cell.strip()!r} is not a number{_separator_hint(cell)}"
                )
                raise DataError(f"{path}: line {number}, column {j + 1}: {what}") from None
    return values, [number for number, _ in lines]


def _separator_hint(cell: str) -> str:
    """A hint when a cell holds several values split by another separator."""
    for separator in (";", "\t", " "):
        if separator in cell.strip() and all(map(_is_number, cell.split(separator))):
            return f" (values separated by {separator!r}? CSV files need commas)"
    return ""


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _check_finite(path: Path, X: np.ndarray, line_numbers, allow_nan: bool) -> None:
    bad = np.argwhere(np.isinf(X) if allow_nan else ~np.isfinite(X))
    if bad.size:
        i, j = bad[0]
        what = "NaN" if np.isnan(X[i, j]) else "infinite"
        where = f"line {line_numbers[i]}" if line_numbers is not None else f"row {i + 1}"
        fix = "remove it" if allow_nan else "remove or impute it, or pass --missing marginalize"
        raise DataError(f"{path}: {where}, column {j + 1}: value is {what}; {fix}")
