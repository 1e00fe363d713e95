"""Operators between the grids: the acquisition models (k-space truncation, 2D slice stacks),
the grids themselves and image-domain interpolation. Pure functions and small objects on
arrays; no file I/O."""
