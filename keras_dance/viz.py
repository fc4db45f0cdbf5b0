"""Matplotlib figures: a map over its input, and a grid comparing methods.

matplotlib is imported when a function here is called, never at ``import keras_dance``.
"""

import numpy as np

from keras_dance.postprocess import postprocess


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _display_image(image):
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    low, high = float(image.min()), float(image.max())
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def overlay(ax, image, saliency, alpha=0.55, cmap="inferno", title=None):
    """Draws ``image`` in grey with the post-processed ``saliency`` on top.

    Args:
        ax: a matplotlib Axes.
        image: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``.
        saliency: a raw map of the image's shape, or an already post-processed
            ``(H, W)`` map in [0, 1].
        alpha: opacity of the map. Defaults to 0.55.
        cmap: colour map of the saliency. Defaults to "inferno".
        title: optional axes title.
    """
    saliency = np.asarray(saliency, dtype=np.float32)
    if saliency.ndim == 3:
        saliency = postprocess(saliency[None])[0]
    shown = _display_image(image)
    ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1)
    ax.imshow(saliency, cmap=cmap, alpha=alpha, vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)


def save_overlay(path, image, saliency, title=None, size=2.4):
    """Writes one overlay (input | map over input) to a PNG file."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(2 * size, size))
    axes[0].imshow(_display_image(image), cmap="gray" if np.ndim(image) == 2 or np.shape(image)[-1] == 1 else None)
    axes[0].set_axis_off()
    axes[0].set_title("input", fontsize=8)
    overlay(axes[1], image, saliency, title=title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def compare_methods(path, images, maps_by_method, size=1.6):
    """A grid: one row per image, the input then one column per method.

    Args:
        path: PNG path to write.
        images: ``(N, H, W, C)``.
        maps_by_method: ``{name: (N, H, W, C) raw maps}``.
    """
    plt = _pyplot()
    names = list(maps_by_method)
    rows, cols = len(images), len(names) + 1
    figure, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size), squeeze=False)
    for r, image in enumerate(images):
        axes[r, 0].imshow(_display_image(image), cmap="gray")
        axes[r, 0].set_axis_off()
        for c, name in enumerate(names, start=1):
            overlay(axes[r, c], image, maps_by_method[name][r], title=name if r == 0 else None)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
