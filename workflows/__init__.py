"""Nipype workflow factories for swigapp (installed as ``swigapp.workflows``).

Workflows only wire library functions from :mod:`swigapp` into Nipype graphs; no maths
lives here. :mod:`.base` builds the participant graph (``init_swig_wf``), :mod:`.fit` the
guide registrations, :mod:`.interfaces` the thin Nipype interfaces.
"""
