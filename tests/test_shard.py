"""Data split over devices: 4 CPU devices in a subprocess (tests/sharded_fits.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sharded_fits import FAMILIES


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    dump = tmp_path_factory.mktemp("hlo")
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count=4 --xla_dump_to={dump} --xla_dump_hlo_module_re=.*grid_program.*",
    }
    script = Path(__file__).with_name("sharded_fits.py")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout), dump


def test_shard_pads_with_zero_weight_rows(sharded):
    result, _ = sharded
    assert result["devices"] == 4
    assert result["padded_shape"] == [304, 3] and result["pad_weights"] == [0.0, 0.0, 0.0]
    assert result["shard_rows"] == [76]


@pytest.mark.parametrize("family", FAMILIES)
def test_split_data_fit_equals_one_device_fit(sharded, family):
    result, _ = sharded
    assert result[f"fit {family} float64"] < 1e-10
    if family == "full":
        assert result["fit full float32"] < 1e-5


def test_the_default_prior_of_split_data_is_that_of_all_data(sharded):
    result, _ = sharded
    assert result["fit default prior"] < 1e-10


def test_the_gradient_of_a_fit_on_split_data_is_that_on_all_data(sharded):
    result, _ = sharded
    assert result["fit gradient"] < 1e-10


def test_split_data_selection_equals_one_device_selection(sharded):
    result, _ = sharded
    assert result["select bic"] < 1e-10 and result["select icl"] < 1e-10
    assert result["select best"][0] == result["select best"][1]


def test_the_estimator_fits_split_data_where_they_lie(sharded):
    result, _ = sharded
    assert result["estimator split programs"] >= 1
    assert result["estimator means"] < 1e-10


def test_compiled_fits_sum_statistics_with_an_all_reduce(sharded):
    _, dump = sharded
    texts = [path.read_text() for path in dump.glob("*grid_program*after_optimizations.txt")]
    split = [text for text in texts if "num_partitions=4" in text]  # the fits of split data
    assert split and len(split) < len(texts)
    assert all(" all-reduce(" in text for text in split)
    assert not any(" all-reduce(" in text for text in texts if text not in split)


def test_a_mesh_of_several_axes_is_refused(sharded):
    result, _ = sharded
    assert result["two-axis mesh"].startswith("X is split over a mesh with axes ('a', 'b')")


def test_split_data_variational_fit_equals_one_device_fit(sharded):
    result, _ = sharded
    assert result["fit variational"] < 1e-10 and result["fit variational bound"] < 1e-12
