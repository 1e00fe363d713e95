"""Report figures (matplotlib, Agg) as embeddable PNG data URIs; no dates in the files."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

from swigapp.io.files import cell_number


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


#: The views of :func:`mosaic`: name and the voxel axis a slice is taken along (RAS-like
#: grids: sagittal along x, coronal along y, axial along z).
VIEWS = (("axial", 2), ("coronal", 1), ("sagittal", 0))


#: A view is shown only if its image is at least this many voxels along both of its axes:
#: through a single slice (a real 2D acquisition of one slice), the views that contain the
#: slice axis are a line.
MIN_VIEW_VOXELS = 4


def shown_views(shape: Sequence[int]) -> list[tuple[str, int]]:
    """The views of :data:`VIEWS` whose image has :data:`MIN_VIEW_VOXELS` along both axes
    (every view of an ordinary volume; the axial alone of a single axial slice)."""
    views = [
        (name, axis)
        for name, axis in VIEWS
        if all(n >= MIN_VIEW_VOXELS for k, n in enumerate(shape[:3]) if k != axis)
    ]
    return views or list(VIEWS[:1])


def _views(volume: np.ndarray, views: Sequence[tuple[str, int]] = VIEWS) -> list[np.ndarray]:
    """The middle slice of each of ``views``, rotated for display."""
    return [np.rot90(np.take(volume, volume.shape[a] // 2, axis=a)) for _, a in views]


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
    unit: str = "",
    units: Mapping[str, str] | None = None,
) -> str:
    """One row per view (axial, coronal, sagittal middle slices: thick LR slices show in the
    views that contain the slice axis; :func:`shown_views`: the axial alone for one slice),
    one column per named volume, each column with a colour bar; ``shared`` columns share a
    window, and their bars are labelled ``unit``; ``units`` labels the bars of other columns
    (default "a.u.")."""
    plt = _plt()
    names = list(columns)
    views = shown_views(np.shape(next(iter(columns.values()))))
    rows = len(views)
    fig, axes = plt.subplots(
        rows, len(names), figsize=(2.6 * len(names), 2.1 * rows + 0.7), layout="constrained"
    )
    axes = np.atleast_2d(axes).reshape(rows, len(names))
    shared_window = _window(columns[shared[0]], mask) if shared else None
    for c, name in enumerate(names):
        vmin, vmax = shared_window if name in shared else _window(columns[name], mask)
        shown = None
        for r, image in enumerate(_views(columns[name], views)):
            ax = axes[r, c]
            shown = ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(views[r][0], fontsize=8)
            if r == 0:
                ax.set_title(name, fontsize=9)
        bar = fig.colorbar(shown, ax=list(axes[:, c]), orientation="horizontal", shrink=0.8)
        bar.ax.tick_params(labelsize=7)
        label = unit if name in shared and unit else (units or {}).get(name, "a.u.")
        bar.set_label(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return to_data_uri(fig)


def flicker_frames(target: np.ndarray, registered: np.ndarray, mask: np.ndarray) -> tuple[str, str]:
    """Two frames with one layout for a registration flicker: the registration target and
    the registered guide, each in the three views (:func:`shown_views`), both with the
    target's edges (red)."""
    plt = _plt()
    contour = edges(target, mask)
    views = shown_views(np.shape(target))
    frames = []
    for image in (target, registered):
        vmin, vmax = _window(image, mask)
        fig, axes = plt.subplots(1, len(views), figsize=(3.2 * len(views), 3.2), squeeze=False)
        layout = zip(axes[0], _views(image, views), _views(contour, views), views, strict=True)
        for ax, bg, ed, (view, _) in layout:
            ax.imshow(bg, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.imshow(
                np.ma.masked_where(~ed, ed), cmap="autumn", alpha=0.8, interpolation="nearest"
            )
            ax.set_axis_off()
            ax.set_title(view, fontsize=8)
        fig.tight_layout()
        frames.append(to_data_uri(fig))
    return frames[0], frames[1]


def edges(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Boolean edge map: gradient magnitude above its 92nd percentile inside the mask."""
    smooth = ndimage.gaussian_filter(np.asarray(image, np.float32), 1.0)
    grad = np.sqrt(sum(ndimage.sobel(smooth, axis=a) ** 2 for a in range(image.ndim)))
    inside = grad[mask] if mask is not None and mask.any() else grad
    return grad > np.percentile(inside, 92)


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
        values = np.array([cell_number(row.get(column)) for row in table], dtype=float)
        flagged = np.array([column in str(row.get("outliers", "")) for row in table])
        x = np.zeros_like(values)
        ax.scatter(x[~flagged], values[~flagged], color="tab:blue", s=18)
        ax.scatter(x[flagged], values[flagged], color="tab:red", s=30)
        ax.boxplot(values[np.isfinite(values)], positions=[0.4], widths=0.3)
        ax.set_xticks([])
        ax.set_title(column, fontsize=8)
    fig.tight_layout()
    return to_data_uri(fig)
