"""MR physics: signal equations (torch, differentiable), protocols from sidecars, units."""

from swigapp.physics.protocol import DEFAULT_PROTOCOLS, Protocol, ProtocolError
from swigapp.physics.signal import (
    as_numpy_fn,
    inversion_recovery,
    mprage,
    spin_echo,
    spoiled_gre,
)
from swigapp.physics.units import to_seconds

__all__ = [
    "DEFAULT_PROTOCOLS",
    "Protocol",
    "ProtocolError",
    "as_numpy_fn",
    "inversion_recovery",
    "mprage",
    "spin_echo",
    "spoiled_gre",
    "to_seconds",
]
