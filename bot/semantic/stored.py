"""A vector as the store holds it: its 384 float32 numbers as little-endian bytes."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def as_vector(stored: bytes) -> NDArray[np.float32]:
    return np.frombuffer(stored, dtype="<f4")


def as_bytes(vector: NDArray[np.float32]) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()
