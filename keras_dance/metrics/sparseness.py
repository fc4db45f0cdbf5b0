"""Sparseness of a map: the Gini index of |E| (Chalasani et al., ICML 2020)."""

import numpy as np

from keras_dance._validation import as_maps, check_non_empty


def sparseness(maps):
    """Gini index of ``|E|`` per sample, in [0, 1]; higher is sparser.

    With ``a`` the ``n`` values of ``|E|`` sorted ascending,
    ``G = 1 − 2 Σ_k (a_k / ‖a‖₁) · (n − k + ½) / n`` (k = 1 … n). A constant map scores
    0, a map with one non-zero value ``1 − 1/n``; an all-zero map scores 0.

    Args:
        maps: ``(B, …)`` raw or post-processed maps.

    Returns:
        ``(B,)`` float32.
    """
    maps = check_non_empty(as_maps(maps), "maps")
    values = np.sort(np.abs(maps).reshape(len(maps), -1).astype(np.float64), axis=1)
    n = values.shape[1]
    total = values.sum(axis=1, keepdims=True)
    safe = np.where(total > 0, total, 1.0)
    weights = (n - np.arange(1, n + 1) + 0.5) / n
    gini = 1.0 - 2.0 * np.sum(values / safe * weights, axis=1)
    return np.where(total[:, 0] > 0, gini, 0.0).astype(np.float32)
