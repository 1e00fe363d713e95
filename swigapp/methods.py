"""The super-resolution methods of the participant level: names, architectures, descriptions.

Kept free of heavy imports so that the command-line parser can list them.
"""

#: Super-resolution methods of the participant level (``--method``).
METHODS = ("swig", "inr", "wmri2q")
#: Shipped weights used by each network method when no model file is given.
DEFAULT_WEIGHTS = {"swig": "swig_default", "wmri2q": "wmri2q_hybrid"}
#: Network architecture (``NetConfig.arch``) each network method runs.
METHOD_ARCH = {"swig": "resnet", "wmri2q": "unet"}
#: What each method is, for the maps' EstimationAlgorithm.
METHOD_DESCRIPTIONS = {
    "swig": "SWIG: weighted-image-guided super-resolution, a 2.5D CNN trained with a "
    "physics-informed self-supervised loss (swigapp)",
    "inr": "Subject-specific implicit neural representation (coordinate MLP with Fourier "
    "features, one head per map; after McGinnis et al., MICCAI 2023) fitted to this subject "
    "by guide consistency through the signal equations and k-space LR consistency (swigapp)",
    "wmri2q": "wmri2q: maps from the weighted images alone by a 2.5D U-Net trained with "
    "low-resolution labels and a scale-invariant Sobel edge loss (after Qiu et al., "
    "ISMRM 2022; swigapp)",
}
