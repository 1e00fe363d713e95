"""Report figures (matplotlib, Agg) as embeddable PNG data URIs; no dates in the files."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

#: Slices shown per mosaic, as fractions of the axis length.
SLICE_FRACTIONS = (0.35, 0.5, 0.65)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def to_data_uri(fig) -> str:  # noqa: ANN001 (a matplotlib Figure)
    """Render a figure as a base64 PNG data URI (no metadata) and close it."""
    plt = _plt()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _slices(volume: np.ndarray, axis: int = 2) -> list[np.ndarray]:
    n = volume.shape[axis]
    return [np.rot90(np.take(volume, int(f * (n - 1)), axis=axis)) for f in SLICE_FRACTIONS]


def _window(volume: np.ndarray, mask: np.ndarray | None) -> tuple[float, float]:
    values = volume[mask] if mask is not None and mask.any() else volume[volume > 0]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, [1, 99])
    return float(lo), float(hi if hi > lo else lo + 1)


def mosaic(
    columns: Mapping[str, np.ndarray],
    mask: np.ndarray | None = None,
    shared: Sequence[str] = (),
    title: str = "",
) -> str:
    """One row per slice, one column per named volume; ``shared`` columns share a window."""
    plt = _plt()
    names = list(columns)
    rows = len(SLICE_FRACTIONS)
    fig, axes = plt.subplots(rows, len(names), figsize=(2.6 * len(names), 2.6 * rows))
    axes = np.atleast_2d(axes).reshape(rows, len(names))
    shared_window = _window(columns[shared[0]], mask) if shared else None
    for c, name in enumerate(names):
        vmin, vmax = shared_window if name in shared else _window(columns[name], mask)
        for r, image in enumerate(_slices(columns[name])):
            ax = axes[r, c]
            ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_axis_off()
            if r == 0:
                ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return to_data_uri(fig)


def edges(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Boolean edge map: gradient magnitude above its 92nd percentile inside the mask."""
    smooth = ndimage.gaussian_filter(np.asarray(image, np.float32), 1.0)
    grad = np.sqrt(sum(ndimage.sobel(smooth, axis=a) ** 2 for a in range(image.ndim)))
    inside = grad[mask] if mask is not None and mask.any() else grad
    return grad > np.percentile(inside, 92)


def overlay(background: np.ndarray, moving: np.ndarray, mask: np.ndarray, title: str) -> str:
    """Edges of ``moving`` (red) over ``background``, in three slices of each orientation."""
    plt = _plt()
    contour = edges(moving, mask)
    vmin, vmax = _window(background, mask)
    fig, axes = plt.subplots(3, 3, figsize=(8, 8))
    for axis in range(3):
        for r, (bg, ed) in enumerate(
            zip(_slices(background, axis), _slices(contour, axis), strict=True)
        ):
            ax = axes[axis, r]
            ax.imshow(bg, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.imshow(
                np.ma.masked_where(~ed, ed), cmap="autumn", alpha=0.8, interpolation="nearest"
            )
            ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return to_data_uri(fig)


def histograms(maps: Mapping[str, np.ndarray], labels: np.ndarray, names: Mapping[int, str]) -> str:
    """T1 and T2 histograms (ms) per tissue class."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, m, upper in zip(axes, ("T1", "T2"), (3000.0, 300.0), strict=True):
        for value, name in names.items():
            sel = labels == value
            if name == "CSF" or not sel.any():
                continue
            ax.hist(1000 * maps[m][sel], bins=80, range=(0, upper), histtype="step", label=name)
        ax.set_xlabel(f"{m} (ms)")
        ax.set_ylabel("voxels")
        ax.legend()
    fig.tight_layout()
    return to_data_uri(fig)


def distributions(table: Sequence[Mapping[str, object]], columns: Sequence[str]) -> str:
    """Strip plots of numeric columns across subjects; flagged outliers in red."""
    plt = _plt()
    n = len(columns)
    fig, axes = plt.subplots(1, n, figsize=(max(2.2 * n, 4), 3.4), squeeze=False)
    for ax, column in zip(axes[0], columns, strict=True):
        values = np.array([float(row[column]) for row in table], dtype=float)
        flagged = np.array([column in str(row.get("outliers", "")) for row in table])
        x = np.zeros_like(values)
        ax.scatter(x[~flagged], values[~flagged], color="tab:blue", s=18)
        ax.scatter(x[flagged], values[flagged], color="tab:red", s=30)
        ax.boxplot(values[np.isfinite(values)], positions=[0.4], widths=0.3)
        ax.set_xticks([])
        ax.set_title(column, fontsize=8)
    fig.tight_layout()
    return to_data_uri(fig)
