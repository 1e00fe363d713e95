"""swigapp: physics-informed, weighted-image-guided super-resolution of quantitative MRI.

The library (everything that computes) is importable without Nipype; the Nipype graph
factories live in :mod:`swigapp.workflows`.
"""

from swigapp._version import __version__

__all__ = ["__version__"]
