#!/usr/bin/env bash
# Reproduce the shipped weights (swigapp/models/weights/): the SWIG model, then the
# no-LR-input ablation, each trained on phantoms generated on the fly (seed 1000), then
# copied into the package with their model cards. CPU, 2 threads: about 45 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
"$BIN/swigapp-train" runs/swig_default --steps 1500
"$BIN/python" -m swigapp.models.shipped runs/swig_default swig_default
"$BIN/swigapp-train" runs/swig_nolr --steps 800 --no-lr-input
"$BIN/python" -m swigapp.models.shipped runs/swig_nolr swig_nolr
