"""SWIG super-resolution model: inputs, network, losses, training, inference, weights."""
