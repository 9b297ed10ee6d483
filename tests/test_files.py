"""Reading data files for the command line, with located errors."""

import numpy as np
import pytest

from jgmm._adapters.data_files import DataError, read_data


def write(path, text):
    path.write_text(text)
    return path


def test_csv_with_and_without_header(tmp_path):
    expected = np.array([[1.0, 2.5], [3.0, -4.0]])
    with_header = read_data(write(tmp_path / "a.csv", "x,y\n1,2.5\n3,-4\n"))
    without = read_data(write(tmp_path / "b.csv", "1,2.5\n\n3,-4e0\n"))
    np.testing.assert_array_equal(with_header, expected)
    np.testing.assert_array_equal(without, expected)
    assert with_header.dtype == np.float64


def test_a_byte_order_mark_is_not_a_header(tmp_path):
    """Spreadsheets write UTF-8 with a byte-order mark: the first row is still data."""
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeff1,2.5\n3,-4\n".encode("utf-8"))
    np.testing.assert_array_equal(read_data(path), [[1.0, 2.5], [3.0, -4.0]])


def test_numpy_files(tmp_path):
    X = np.arange(6.0).reshape(3, 2)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "column.npy", X[:, 0])
    np.savez(tmp_path / "one.npz", data=X)
    np.savez(tmp_path / "named.npz", X=X, labels=np.arange(3))
    np.testing.assert_array_equal(read_data(tmp_path / "x.npy"), X)
    np.testing.assert_array_equal(read_data(tmp_path / "column.npy"), X[:, :1])
    np.testing.assert_array_equal(read_data(tmp_path / "one.npz"), X)
    np.testing.assert_array_equal(read_data(tmp_path / "named.npz"), X)


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,b\n1,2\n3,x\n", "line 3, column 2: 'x' is not a number"),
        ("1,2\n3\n", "line 2 has 1 columns, expected 2 like line 1"),
        ("1,2\n,4\n", "line 2, column 1: is empty \\(missing value; pass --missing marginalize"),
        ("h1,h2\n1,2\n3,nan\n", "line 3, column 2: value is NaN"),
        ("1,inf\n", "line 1, column 2: value is infinite"),
        ("a,b\n", "no data rows"),
        ("a;b\n1;2\n", "line 2, column 1: '1;2' is not a number \\(values separated by ';'\\? CSV files need commas\\)"),
    ],
)
def test_csv_errors_name_file_line_and_column(tmp_path, text, message):
    path = write(tmp_path / "data.csv", text)
    with pytest.raises(DataError, match=message) as info:
        read_data(path)
    assert str(info.value).startswith(str(path))


def test_numpy_file_errors(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    np.save(tmp_path / "complex.npy", np.ones((2, 2), complex))
    np.save(tmp_path / "cube.npy", np.ones((2, 2, 2)))
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]]))
    np.savez(tmp_path / "two.npz", a=np.ones(2), b=np.ones(2))
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    cases = {
        "objects.npy": "cannot read it as a numpy .npy file",
        "complex.npy": "holds complex128 values, expected real numbers",
        "cube.npy": "expected a table of samples × features, got an array of shape \\(2, 2, 2\\)",
        "nan.npy": "row 1, column 2: value is NaN",
        "two.npz": "holds arrays \\['a', 'b'\\]; expected one array, or one named 'X'",
        "broken.npy": "cannot read it as a numpy .npy file",
    }
    for name, message in cases.items():
        with pytest.raises(DataError, match=message):
            read_data(tmp_path / name)


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(DataError, match="absent.csv: no such file"):
        read_data(tmp_path / "absent.csv")
    with pytest.raises(DataError, match="unsupported file type '.txt'; use one of .csv, .npy, .npz"):
        read_data(write(tmp_path / "data.txt", "1,2\n"))


def test_missing_cells_are_nan_when_marginalized(tmp_path):
    path = write(tmp_path / "data.csv", "a,b\n1,2\n,4\n,\n\n5,nan\n")
    nan = np.nan  # the row of empty cells stays (a row of the output per row of input); the blank line does not
    np.testing.assert_array_equal(read_data(path, "marginalize"), [[1, 2], [nan, 4], [nan, nan], [5, nan]])
    with pytest.raises(DataError, match="line 2, column 2: value is infinite; remove it"):
        read_data(write(tmp_path / "inf.csv", "1,2\n3,-inf\n"), "marginalize")
