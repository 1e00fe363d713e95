"""Version of swigapp (single source of truth)."""

__version__ = "0.4.0"
