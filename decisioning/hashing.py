"""Deterministic, vectorised hashing of customer ids to uniform numbers.

Experiment arms and exploration draws must not depend on batch order or process:
a customer lands in the same arm every time, on every machine, and the same seed
gives the same exploration draw. SplitMix64 over ``customer_id XOR key`` gives
that with a few numpy operations per batch.
"""

from __future__ import annotations

import hashlib

import numpy as np

_U64 = np.uint64


def key_of(*parts: object) -> int:
    """A 64-bit key from any printable parts (salt, seed, time, purpose)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele et al. 2014) on a uint64 array."""
    with np.errstate(over="ignore"):
        z = x + _U64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
        return z ^ (z >> _U64(31))


def uniform(customer_ids: np.ndarray, key: int) -> np.ndarray:
    """One uniform number in [0, 1) per customer id, fixed by ``key``."""
    ids = np.asarray(customer_ids).astype(np.int64).view(np.uint64)
    h = splitmix64(ids ^ _U64(key))
    # The top 53 bits make an exactly representable double in [0, 1).
    return (h >> _U64(11)).astype(np.float64) * (1.0 / (1 << 53))
