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


# ------------------------------------------------------------------ text
PAD_TOKENS = ("", "[PAD]")


class TextMap:
    """Words with their saliency, shown as highlighted text (``kd.viz.text``).

    ``html`` is a self-contained HTML fragment (red: evidence for the class, blue:
    against, opacity: |score| over the sentence's largest); in a notebook the object
    displays itself. ``figure()`` draws the same as a matplotlib figure and ``save(path)``
    writes ``.html`` or an image (``.png``, ``.svg``, ``.pdf``) atomically.
    """

    def __init__(self, tokens, scores):
        self.tokens = [str(t) for t in tokens]
        self.scores = np.asarray(scores, np.float64)
        keep = [i for i, t in enumerate(self.tokens) if t not in PAD_TOKENS]
        self.tokens = [self.tokens[i] for i in keep]
        self.scores = self.scores[keep]
        largest = float(np.abs(self.scores).max()) if len(self.scores) else 0.0
        self.weights = self.scores / largest if largest > 0 else np.zeros_like(self.scores)

    @property
    def html(self):
        import html

        spans = []
        for token, weight in zip(self.tokens, self.weights):
            colour = "220, 50, 47" if weight >= 0 else "38, 139, 210"
            spans.append(
                f'<span style="background: rgba({colour}, {abs(weight):.3f}); padding: 0 2px; '
                f'border-radius: 3px" title="{weight:+.3f}">{html.escape(token)}</span>')
        return '<div style="line-height: 1.9">' + " ".join(spans) + "</div>"

    def _repr_html_(self):
        return self.html

    def figure(self, width=8.0):
        """A matplotlib figure of the highlighted words (wrapped to ``width`` inches)."""
        plt = _pyplot()
        figure = plt.figure(figsize=(width, 0.6))
        renderer = figure.canvas.get_renderer()
        x, y, line = 0.01, 0.5, 0
        for token, weight in zip(self.tokens, self.weights):
            colour = (0.86, 0.2, 0.18) if weight >= 0 else (0.15, 0.55, 0.82)
            text = figure.text(x, y, token, fontsize=11, va="center", bbox=dict(
                boxstyle="round,pad=0.2", linewidth=0, facecolor=(*colour, abs(weight))))
            extent = text.get_window_extent(renderer).transformed(figure.transFigure.inverted())
            if x > 0.01 and extent.x1 > 0.99:  # wrap
                line += 1
                text.set_position((0.01, y))
                extent = text.get_window_extent(renderer).transformed(
                    figure.transFigure.inverted())
            x = extent.x1 + 0.012
        figure.set_size_inches(width, 0.6 * (line + 1))
        return figure

    def save(self, path):
        """Writes ``.html`` or an image by the suffix of ``path``; returns the path."""
        from pathlib import Path

        from keras_dance._files import atomic_file

        path = Path(path)
        with atomic_file(path) as temporary:
            if path.suffix.lower() in (".html", ".htm"):
                temporary.write_text("<!doctype html><meta charset=utf-8>" + self.html + "\n")
            else:
                figure = self.figure()
                try:
                    figure.savefig(temporary, bbox_inches="tight")
                finally:
                    _pyplot().close(figure)
        return path


def text(tokens, scores):
    """Highlighted words: ``tokens`` (words, or ids with a ``vocabulary`` mapping applied
    by the caller) and their ``scores`` (one per token, e.g. a row of a token model's
    maps). Padding tokens ("" and "[PAD]") are left out.

    Returns:
        a ``TextMap`` (``.html``, ``.figure()``, ``.save(path)``; displays in notebooks).

    Raises:
        ValueError: tokens and scores of different lengths, or non-finite scores.
    """
    scores = np.asarray(scores)
    tokens = list(tokens)
    if scores.ndim != 1 or len(scores) != len(tokens):
        raise ValueError(
            f"Expected one score per token: `scores` of shape ({len(tokens)},). Received: "
            f"scores.shape={scores.shape}")
    if not np.all(np.isfinite(scores.astype(np.float64))):
        raise ValueError("Expected finite `scores`. Received: NaN or Inf")
    return TextMap([t.decode() if isinstance(t, bytes) else t for t in tokens], scores)
