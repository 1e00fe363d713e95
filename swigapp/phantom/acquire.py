"""Simulated acquisitions from ground-truth maps: LR quantitative maps and HR weighted guides.

LR maps: k-space truncation of the HR truth plus Gaussian fitting noise (relative SD per
map). Guides: forward model of the protocol, smooth receive-bias field, rigid head motion
relative to the maps (a few degrees and mm), Rician noise, arbitrary intensity scale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from swigapp.operators import kspace
from swigapp.phantom.anatomy import smooth_field
from swigapp.physics.protocol import Protocol

#: Relative SD of the fitting noise on acquired LR maps.
LR_NOISE = {"PD": 0.01, "T1": 0.02, "T2": 0.02}


@dataclass(frozen=True)
class RigidMotion:
    """Rigid transform of the head between the maps and a guide: rotation (deg) and shift (mm).

    Rotations are about the grid centre, in the x, y, z order of the voxel axes.
    """

    rotation_deg: tuple[float, float, float]
    translation_mm: tuple[float, float, float]

    @classmethod
    def random(cls, rng: np.random.Generator, max_deg: float, max_mm: float) -> RigidMotion:
        """Uniform random rotation in +-max_deg per axis and shift in +-max_mm per axis."""
        rot = tuple(float(v) for v in rng.uniform(-max_deg, max_deg, 3))
        shift = tuple(float(v) for v in rng.uniform(-max_mm, max_mm, 3))
        return cls(rotation_deg=rot, translation_mm=shift)

    @classmethod
    def from_matrix(cls, matrix: np.ndarray) -> RigidMotion:
        """The motion of a 4x4 rigid transform in mm (inverse of :meth:`matrix`)."""
        angles = Rotation.from_matrix(np.asarray(matrix)[:3, :3]).as_euler("xyz", degrees=True)
        return cls(
            rotation_deg=tuple(float(v) for v in angles),
            translation_mm=tuple(float(v) for v in np.asarray(matrix)[:3, 3]),
        )

    def voxel_matrix(self, shape: Sequence[int], voxel_size: Sequence[float]) -> np.ndarray:
        """4x4 voxel -> voxel map of this transform about the grid centre: content at voxel
        u moves to voxel ``voxel_matrix @ u`` (grid ``shape``, voxels ``voxel_size`` mm)."""
        vox = np.diag(np.asarray(voxel_size, dtype=float))
        centre = (np.asarray(shape, dtype=float) - 1) / 2.0
        forward = self.matrix()
        lin = np.linalg.inv(vox) @ forward[:3, :3] @ vox
        out = np.eye(4)
        out[:3, :3] = lin
        out[:3, 3] = centre - lin @ centre + np.linalg.inv(vox) @ forward[:3, 3]
        return out

    def matrix(self) -> np.ndarray:
        """4x4 homogeneous transform in mm, about the origin of the centred grid."""
        out = np.eye(4)
        out[:3, :3] = Rotation.from_euler("xyz", self.rotation_deg, degrees=True).as_matrix()
        out[:3, 3] = self.translation_mm
        return out

    def perturbed(self, rng: np.random.Generator, max_deg: float, max_mm: float) -> RigidMotion:
        """This motion with a uniform error of up to +-max_deg and +-max_mm per axis added:
        a registration's estimate of it."""
        error = RigidMotion.random(rng, max_deg, max_mm)
        return RigidMotion(
            rotation_deg=tuple(
                a + b for a, b in zip(self.rotation_deg, error.rotation_deg, strict=True)
            ),
            translation_mm=tuple(
                a + b for a, b in zip(self.translation_mm, error.translation_mm, strict=True)
            ),
        )

    def apply(self, data: np.ndarray, voxel_size: Sequence[float], order: int = 3) -> np.ndarray:
        """Resample ``data`` so that its content moves by this transform (about the centre)."""
        return self._resample(data, voxel_size, order, undo=False)

    def undo(self, data: np.ndarray, voxel_size: Sequence[float], order: int = 3) -> np.ndarray:
        """Resample ``data`` so that its content moves back by this transform: what a
        registration that estimated it does (B-spline, like ANTs' ``bSpline``)."""
        return self._resample(data, voxel_size, order, undo=True)

    def _resample(
        self, data: np.ndarray, voxel_size: Sequence[float], order: int, undo: bool
    ) -> np.ndarray:
        if not any(self.rotation_deg) and not any(self.translation_mm):
            return data
        vox = np.diag(np.asarray(voxel_size, dtype=float))
        centre = (np.asarray(data.shape) - 1) / 2.0
        forward = self.matrix()
        inv = np.linalg.inv(forward[:3, :3])
        # output voxel v maps to input voxel: centre + S^-1 R^-1 (S (v - centre) - t)
        lin = np.linalg.inv(vox) @ inv @ vox
        offset = centre - lin @ centre - np.linalg.inv(vox) @ inv @ forward[:3, 3]
        if undo:  # the inverse map: v -> lin^-1 (v - offset)
            lin = np.linalg.inv(lin)
            offset = -lin @ offset
        out = ndimage.affine_transform(data, lin, offset=offset, order=order, mode="constant")
        return out.astype(np.float32)


def simulate_lr_maps(
    maps: Mapping[str, np.ndarray],
    lr_shape: Sequence[int],
    rng: np.random.Generator,
    noise: Mapping[str, float] = LR_NOISE,
    forward: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """LR maps by k-space truncation of HR ``maps`` (PD, T1 s, T2 s) plus relative noise.

    ``forward``: another acquisition operator (float64 HR -> LR of ``lr_shape``), e.g.
    :meth:`swigapp.operators.acquisition.SliceStack2D.forward`. Values are clipped at 0 (truncation
    rings below zero at the brain edge).
    """
    out = {}
    for name, data in maps.items():
        if forward is None:
            lr = np.asarray(kspace.downsample(data.astype(np.float64), lr_shape))
        else:
            lr = np.asarray(forward(data.astype(np.float64)))
        inside = lr > 0.02 * np.percentile(data[data > 0], 50) if (data > 0).any() else lr > 0
        lr = lr + inside * noise.get(name, 0.0) * np.abs(lr) * rng.standard_normal(lr.shape)
        out[name] = np.clip(lr, 0.0, None).astype(np.float32)
    return out


def simulate_guide(
    maps: Mapping[str, np.ndarray],
    protocol: Protocol,
    rng: np.random.Generator,
    voxel_size: Sequence[float],
    motion: RigidMotion | None = None,
    bias_strength: float = 0.15,
    snr: float = 40.0,
    scale: float = 1000.0,
    b1: np.ndarray | None = None,
    inversion_efficiency: float = 1.0,
) -> np.ndarray:
    """HR weighted image of ``protocol`` from HR maps, as a scanner would deliver it.

    ``bias_strength``: SD of the log receive bias (0.15 ~ +-30 % across the head); ``snr``:
    mean brain signal over the noise SD (Rician magnitude noise); ``scale``: arbitrary
    intensity unit of the scanner. ``b1`` (relative B1+ per voxel) and
    ``inversion_efficiency``: departures of the real acquisition from ``protocol``
    (:meth:`swigapp.physics.protocol.Protocol.signal`).
    """
    clean = protocol.signal_np(
        maps["PD"], maps["T1"], maps["T2"], b1=b1, inversion_efficiency=inversion_efficiency
    ).astype(np.float32)
    if motion is not None:
        clean = np.clip(motion.apply(clean, voxel_size), 0.0, None)
    bias = np.exp(bias_strength * smooth_field(clean.shape, rng, nodes=3))
    biased = clean * bias
    brain = biased[maps["PD"] > 0.5]
    sigma = (brain.mean() if brain.size else biased.mean()) / snr
    real = biased + sigma * rng.standard_normal(clean.shape)
    imag = sigma * rng.standard_normal(clean.shape)
    return (np.sqrt(real**2 + imag**2) * scale).astype(np.float32)
