"""Reproducible, *paired* randomness for the world.

Every random draw of the world is a pure function of ``(seed, stream, day, customer,
counters...)``: a stream/day key is derived once from :class:`numpy.random.SeedSequence`
and each draw hashes the key with the customer id and counters (splitmix64). Hence

* the same seed gives identical tables whatever the chunking or batch sizes, and
* the same customer on the same day gets the same uniforms whatever policy acts, so two
  policies simulated on one world are compared on common random numbers (paired).
"""

from __future__ import annotations

import zlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 2.0**-53


def stream_key(seed: int, stream: str, day: int = 0) -> np.uint64:
    """Key of one named stream on one day, from ``SeedSequence(seed, spawn_key=...)``.

    Parameters
    ----------
    seed
        The world's seed.
    stream
        Name of what is drawn (``"activity.count"``, ``"respond.conversion"``, ...).
    day
        Day offset from the world's start (may be negative for pre-history draws).
    """
    code = zlib.crc32(stream.encode())
    seq = np.random.SeedSequence(seed, spawn_key=(code, day + 100_000))
    return np.uint64(seq.generate_state(1, dtype=np.uint64)[0])


def _mix(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def uniforms(key: np.uint64, ids: np.ndarray, *counters: np.ndarray | int) -> np.ndarray:
    """Uniform(0, 1) draws, one per element of ``ids`` (broadcast with ``counters``).

    Parameters
    ----------
    key
        A :func:`stream_key`.
    ids
        Customer ids (any integer dtype).
    *counters
        Further integer coordinates of the draw (offer index, channel index, event
        number, ...); different counters give independent draws.
    """
    with np.errstate(over="ignore"):
        z = _mix(np.asarray(ids).astype(np.uint64) * _GOLDEN + key)
        for c in counters:
            z = _mix(z ^ (np.asarray(c).astype(np.uint64) * _M2 + _GOLDEN))
    return (z >> np.uint64(11)).astype(np.float64) * _TO_UNIT + 0.5 * _TO_UNIT


def normals(key: np.uint64, ids: np.ndarray, *counters: np.ndarray | int) -> np.ndarray:
    """Standard normal draws (inverse of the normal CDF applied to :func:`uniforms`)."""
    from scipy.special import ndtri

    return ndtri(uniforms(key, ids, *counters))


def poisson(u: np.ndarray, lam: np.ndarray, kmax: int = 60) -> np.ndarray:
    """Poisson counts by inverting the CDF at the given uniforms.

    Inversion (rather than ``Generator.poisson``) keeps one uniform per count, so a
    customer's draw stays paired when their rate changes between policies.
    """
    lam = np.broadcast_to(np.asarray(lam, dtype=np.float64), u.shape)
    k = np.zeros(u.shape, dtype=np.int32)
    p = np.exp(-lam)
    cdf = p.copy()
    idx = np.flatnonzero(u > cdf)  # only the customers still above the CDF keep iterating
    i = 0
    while idx.size and i < kmax:
        i += 1
        k[idx] += 1
        p_i = p[idx] * lam[idx] / i
        p[idx] = p_i
        cdf[idx] += p_i
        idx = idx[u[idx] > cdf[idx]]
    return k


def choice_cdf(u: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    """Row-wise categorical draw: index of the first column whose cumulative weight exceeds ``u``.

    Parameters
    ----------
    u
        Uniforms, shape ``(n,)``.
    cdf
        Row-wise cumulative probabilities, shape ``(n, k)``, last column 1.
    """
    idx = (cdf < u[:, None]).sum(axis=1)
    return np.minimum(idx, cdf.shape[1] - 1)
