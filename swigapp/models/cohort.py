"""From a validated subject bundle to network inputs: HR grid, brain mask, registered guides.

This is the path real data takes (and the benchmark's held-out phantoms): the HR grid is
the LR maps' field of view at the guides' resolution, the guides are registered with ANTs
to their own contrast synthesised from the LR maps, then resampled onto that grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from swigapp.inputs.bundle import SubjectBundle, load_bundle
from swigapp.io.bids import layout
from swigapp.masking import mask_from_maps
from swigapp.models.features import MAP_ORDER, SubjectTensors, prepare_subject, upsample_maps
from swigapp.operators import grid
from swigapp.operators.acquisition import Acquisition, from_metadata
from swigapp.registration import (
    DEFAULT_SAMPLING,
    RegistrationSettings,
    final_shrink,
    register_guide,
)
from swigapp.synthesis import synthesize


@dataclass
class PreparedSubject:
    """Network inputs of one subject plus the HR grid they live on."""

    tensors: SubjectTensors
    hr_affine: np.ndarray
    registered: dict[str, np.ndarray]
    transforms: dict[str, tuple[str, ...]]
    #: The LR acquisition model (:func:`swigapp.operators.acquisition.from_metadata`).
    acquisition: Acquisition
    #: Each registered guide's field-of-view coverage on the HR grid (0-1).
    coverage: dict[str, np.ndarray] = field(default_factory=dict)


def prepare_bundle(
    bundle: SubjectBundle,
    voxel_size: Sequence[float] | None = None,
    transform: str = "rigid",
    seed: int = 0,
    transform_dir: str | Path | None = None,
    sampling: float = DEFAULT_SAMPLING,
) -> PreparedSubject:
    """HR grid (guides' voxel size unless ``voxel_size``), mask, registration (as the app
    registers), inputs. The LR acquisition model comes from the T1 map's sidecar, as in the
    app (``--lr-model auto``): its initial upsampling gives the network input. ``sampling``:
    the registration metric's sampling fraction (the app's default)."""
    first = next(iter(bundle.guides.values()))
    if voxel_size is None:
        voxel_size = grid.voxel_sizes(first[1])
    lr_shape = next(iter(bundle.lr_maps.values())).shape
    acq = from_metadata(lr_shape, bundle.lr_affine, voxel_size, bundle.map_sidecar)
    hr_affine = acq.hr_affine
    up = upsample_maps(bundle.lr_maps, acq)
    mask = mask_from_maps(up[0], up[1], voxel_size=tuple(voxel_size), t2=up[2])
    up_maps = dict(zip(MAP_ORDER, up, strict=True))
    registered, transforms, coverage = {}, {}, {}
    shrink = final_shrink(grid.voxel_sizes(bundle.lr_affine), voxel_size)
    for name, (data, affine) in bundle.guides.items():
        fixed = synthesize(up_maps, bundle.protocols[name]) * mask
        prefix = None
        if transform_dir is not None:
            prefix = (
                Path(transform_dir) / f"sub-{bundle.subject}_from-{name}_to-qmri_mode-image_xfm"
            )
        settings = RegistrationSettings(transform, seed, sampling)
        result = register_guide(fixed, hr_affine, data, affine, settings, prefix, shrink)
        registered[name] = result.image
        transforms[name] = result.transforms
        coverage[name] = result.coverage
    tensors = prepare_subject(
        bundle.lr_maps, registered, bundle.protocols, mask, lr_up=up, acquisition=acq
    )
    return PreparedSubject(tensors, hr_affine, registered, transforms, acq, coverage)


def bids_pool(
    bids_dir: str | Path,
    subjects: Sequence[str] | None = None,
    guides: Sequence[str] = ("T1w", "T2w", "FLAIR", "PDw"),
    progress: bool = True,
) -> list[SubjectTensors]:
    """Network inputs for every subject of a BIDS cohort (no HR truth: self-supervised)."""
    bids = layout(bids_dir)
    labels = list(subjects) if subjects else sorted(bids.get_subjects())
    pool = []
    for label in tqdm(labels, desc="preparing cohort", disable=not progress):
        sessions = bids.get_sessions(subject=label) or [None]
        for session in sessions:
            bundle = load_bundle(bids, label, session, guides=guides)
            pool.append(prepare_bundle(bundle).tensors)
    return pool
