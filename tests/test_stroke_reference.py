"""The stroke benchmark's reference maps (benchmarks/stroke.py): its tissue classes, checked on
weighted images synthesised from a phantom whose classes are known (the real images are
fetched, never committed)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from swigapp.phantom.anatomy import load_anatomy
from swigapp.phantom.tissue import make_truth
from swigapp.physics.protocol import DEFAULT_PROTOCOLS

# benchmarks/ is not installed: the checkout's, appended (the installed swigapp stays first)
sys.path.append(str(Path(__file__).resolve().parents[1]))
from benchmarks import stroke

#: A chronic infarct's gliotic tissue: bright on T2w and FLAIR (PD, T1 s, T2 s).
GLIOSIS = {"PD": 0.9, "T1": 2.0, "T2": 0.3}


def test_classes_of_synthesised_8bit_images_match_the_phantom():
    """T1w, T2w and FLAIR from a template phantom with large lesions, noise 2 % of the
    brain maximum, quantised to 8 bits and brain-extracted as the source is: nearly every
    pure WM, GM and CSF voxel gets its class, most pure lesion voxels the lesion class, and
    few voxels of other tissue are called lesion."""
    rng = np.random.default_rng(0)
    truth = make_truth(load_anatomy("tiny"), rng, n_lesions=6, lesion_radius_mm=(8.0, 12.0),
                       adjust_values=lambda v: v | {"lesion": GLIOSIS})  # fmt: skip
    brain = truth.brain_mask > 0.5
    maps = truth.as_dict()
    images = {}
    for guide in stroke.FILES:
        s = np.abs(DEFAULT_PROTOCOLS[guide].signal_np(maps["PD"], maps["T1"], maps["T2"]))
        s = s + 0.02 * s[brain].max() * rng.standard_normal(s.shape)
        s = np.where(brain, s, 0.0)
        images[guide] = np.clip(np.round(250 * s / np.percentile(s, 99.9)), 0, 255)
    labels = stroke.classify({g: v.astype(np.float32) for g, v in images.items()})
    names = ("WM", "GM", "CSF", "lesion")
    stack = np.stack([truth.fractions[n] for n in names])
    pure = stack.max(0) >= 0.9
    best = np.argmax(stack, 0)
    recall = {n: labels[n.lower()][pure & (best == i)].mean() for i, n in enumerate(names)}
    assert min(recall["WM"], recall["GM"], recall["CSF"]) > 0.97, recall
    assert recall["lesion"] > 0.7, recall
    called = labels["lesion"] & pure
    assert (best[called] == 3).mean() > 0.5  # most lesion calls in pure tissue are lesion
