"""NumPy pieces every backend module of the seam shares."""

import numpy as np


def interpolation(size_in, size_out):
    """``(size_out, size_in)`` weights of corner-aligned linear interpolation."""
    weights = np.zeros((size_out, size_in), np.float64)
    where = (np.arange(size_out) * ((size_in - 1) / (size_out - 1)) if size_out > 1
             else np.zeros(1))
    low = np.minimum(np.floor(where).astype(int), size_in - 1)
    high = np.minimum(low + 1, size_in - 1)
    fraction = where - low
    weights[np.arange(size_out), low] += 1.0 - fraction
    weights[np.arange(size_out), high] += fraction
    return weights.astype(np.float32)
