"""From the BIDS inputs to the validated subject bundle: the LR maps conditioned (units, PD
scale, invalid voxels, maps not acquired; :mod:`~swigapp.inputs.qmri`) and everything a
participant brings, loaded and checked (:mod:`~swigapp.inputs.bundle`). Reading and
querying files stay in :mod:`swigapp.io`."""
