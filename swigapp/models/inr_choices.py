"""The INR fit's choices (torch-free, for the command line): what it corrects (``--inr-init``)
and how it stops (``--inr-stop``); :mod:`swigapp.models.inr` implements them."""

from __future__ import annotations

#: lr: the upsampled LR maps; swig: the SWIG prediction.
INITS: tuple[str, ...] = ("lr", "swig")
#: auto: steps with init lr, mi with init swig; mi: mutual information with the guides
#: stops rising; steps: a fixed number of steps.
STOP_RULES: tuple[str, ...] = ("auto", "mi", "steps")
