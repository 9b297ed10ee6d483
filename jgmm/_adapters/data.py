"""Data sets bundled with the package."""

from __future__ import annotations

from importlib import resources

import numpy as np


def load_faithful() -> np.ndarray:
    """Old Faithful geyser eruptions: (272, 2) float64 [eruption minutes, waiting minutes].

    The classic two-cluster data set (Azzalini & Bowman, 1990; R's
    ``datasets::faithful``), public domain.
    """
    with resources.files("jgmm").joinpath("data/faithful.csv").open() as f:
        return np.loadtxt(f, delimiter=",", skiprows=1)
