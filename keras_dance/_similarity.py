"""Similarity of two saliency maps: rank correlation, SSIM, HOG correlation (numpy/TF)."""

import numpy as np
from scipy import stats

from keras_dance.postprocess import postprocess


def spearman(a, b):
    """Spearman rank correlation per sample of two ``(B, …)`` arrays (NaN if constant)."""
    out = []
    for u, v in zip(np.reshape(a, (len(a), -1)), np.reshape(b, (len(b), -1))):
        if np.ptp(u) == 0 or np.ptp(v) == 0:
            out.append(np.nan)
        else:
            out.append(stats.spearmanr(u, v).statistic)
    return np.asarray(out, np.float32)


def pearson(a, b):
    out = []
    for u, v in zip(np.reshape(a, (len(a), -1)), np.reshape(b, (len(b), -1))):
        out.append(np.nan if np.std(u) == 0 or np.std(v) == 0 else np.corrcoef(u, v)[0, 1])
    return np.asarray(out, np.float32)


def hog(images, cell=4, bins=9):
    """A plain histogram of oriented gradients per ``cell × cell`` block, ``(B, features)``.

    Unsigned orientations in ``bins`` bins, weighted by gradient magnitude, each cell's
    histogram L2-normalised (Dalal & Triggs without block overlap).
    """
    features = []
    for image in images:
        gy, gx = np.gradient(image.astype(np.float64))
        magnitude = np.hypot(gx, gy)
        angle = np.mod(np.arctan2(gy, gx), np.pi)
        index = np.minimum((angle / np.pi * bins).astype(int), bins - 1)
        h, w = image.shape[0] // cell, image.shape[1] // cell
        histogram = np.zeros((h, w, bins))
        for r in range(h):
            for c in range(w):
                block = (slice(r * cell, (r + 1) * cell), slice(c * cell, (c + 1) * cell))
                histogram[r, c] = np.bincount(index[block].ravel(), magnitude[block].ravel(),
                                              minlength=bins)
        norm = np.linalg.norm(histogram, axis=-1, keepdims=True)
        features.append((histogram / np.where(norm > 0, norm, 1)).ravel())
    return np.asarray(features)


def compare(maps_a, maps_b):
    """Similarity of two batches of raw maps, per sample.

    Returns a dict of ``(B,)`` arrays: ``spearman_abs`` (post-processed maps),
    ``spearman_signed`` (raw maps, channels summed), ``ssim`` and ``hog_pearson`` (of the
    post-processed maps; NaN for maps that are not images).
    """
    maps_a, maps_b = np.asarray(maps_a, np.float32), np.asarray(maps_b, np.float32)
    image_like = maps_a.ndim == 4
    shown_a = postprocess(maps_a, reduce_channels=maps_a.ndim >= 3)
    shown_b = postprocess(maps_b, reduce_channels=maps_b.ndim >= 3)
    signed_a = maps_a.sum(-1) if maps_a.ndim >= 3 else maps_a
    signed_b = maps_b.sum(-1) if maps_b.ndim >= 3 else maps_b
    result = {"spearman_abs": spearman(shown_a, shown_b),
              "spearman_signed": spearman(signed_a, signed_b)}
    if image_like and min(shown_a.shape[1:]) >= 3:
        size = min(11, *shown_a.shape[1:])
        size -= 1 - size % 2
        result["ssim"] = ssim(shown_a, shown_b, filter_size=size)
        result["hog_pearson"] = pearson(hog(shown_a), hog(shown_b))
    else:
        result["ssim"] = np.full(len(maps_a), np.nan, np.float32)
        result["hog_pearson"] = np.full(len(maps_a), np.nan, np.float32)
    return result


def ssim(a, b, max_val=1.0, filter_size=11, sigma=1.5, k1=0.01, k2=0.03):
    """Structural similarity of ``(B, H, W)`` images, as ``tf.image.ssim`` computes it
    (Wang et al. 2004): a normalised ``filter_size`` Gaussian window of ``sigma``, valid
    positions only, ``C1 = (k1·max_val)²``, ``C2 = (k2·max_val)²``; the mean over positions
    of luminance × contrast-structure. float32 ``(B,)``."""
    coords = np.arange(filter_size, dtype=np.float64) - (filter_size - 1) / 2.0
    logits = -0.5 * (coords[None] ** 2 + coords[:, None] ** 2) / sigma ** 2
    kernel = np.exp(logits - logits.max())
    kernel /= kernel.sum()

    def window_mean(values):
        windows = np.lib.stride_tricks.sliding_window_view(values, (filter_size, filter_size),
                                                           axis=(1, 2))
        return np.einsum("bhwij,ij->bhw", windows, kernel)

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    mean_a, mean_b = window_mean(a), window_mean(b)
    products = 2.0 * mean_a * mean_b
    squares = mean_a ** 2 + mean_b ** 2
    luminance = (products + c1) / (squares + c1)
    structure = ((2.0 * window_mean(a * b) - products + c2)
                 / (window_mean(a * a + b * b) - squares + c2))
    return (luminance * structure).mean(axis=(1, 2)).astype(np.float32)
