"""Nipype workflow factories for swigapp (installed as ``swigapp.workflows``).

Workflows only wire library functions from :mod:`swigapp` into Nipype graphs; no maths
lives here. The participant-level graph arrives with the BIDS App issue.
"""
