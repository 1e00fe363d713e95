"""Input/output: NIfTI and JSON writing (BIDS queries and derivatives arrive with the app)."""
