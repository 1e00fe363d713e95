"""Shared fixtures: tiny phantom subjects and datasets, made once per test session."""

import pytest

from swigapp.phantom.bids import write_dataset
from swigapp.phantom.subject import PhantomConfig, make_subject


@pytest.fixture(scope="session")
def tiny_subject():
    """One tiny phantom subject (2 mm, 40 slices), LR factor 2."""
    return make_subject(0, seed=7, config=PhantomConfig(size="tiny"))


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A tiny 2-subject phantom BIDS dataset, LR factor 1x1x4 (read-only use, please)."""
    root = tmp_path_factory.mktemp("bids") / "ds"
    config = PhantomConfig(size="tiny", lr_factors=(1.0, 1.0, 4.0))
    return write_dataset(root, n_subjects=2, seed=3, config=config, progress=False)
