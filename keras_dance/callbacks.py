"""ExplanationCallback: saliency maps in TensorBoard whenever the model is evaluated."""

import os
from pathlib import Path

import keras
import numpy as np

from keras_dance._files import atomic_file
from keras_dance._tensorboard import SummaryWriter
from keras_dance.postprocess import postprocess


def _colour(shown, cmap="inferno"):
    from matplotlib import colormaps

    return colormaps[cmap](shown)[..., :3].astype(np.float32)


def overlays(x, maps, alpha=0.55):
    """RGB overlays ``(B, H, W, 3)`` in [0, 1]: the grey input under the coloured map."""
    x = np.asarray(x, np.float32)
    shown = postprocess(maps)
    grey = x.mean(axis=-1) if x.shape[-1] != 1 else x[..., 0]
    low = grey.reshape(len(grey), -1).min(1).reshape(-1, 1, 1)
    high = grey.reshape(len(grey), -1).max(1).reshape(-1, 1, 1)
    grey = (grey - low) / np.where(high > low, high - low, 1.0)
    return (1 - alpha) * np.repeat(grey[..., None], 3, -1) + alpha * _colour(shown)


class ExplanationCallback(keras.callbacks.Callback):
    """Recomputes maps of fixed probe inputs each time an evaluation ends.

    Runs at the end of ``model.evaluate`` and of every validation pass of ``model.fit``,
    with the model's current weights, and writes to TensorBoard under ``log_dir``:
    image summaries ``explanations/input`` and ``explanations/overlay`` (images only) and
    scalars ``explanations/sparseness`` (Gini of |E|) and ``explanations/deletion_auc``
    (lower is better; token models delete words by the padding token), and for token
    models a text summary ``explanations/text``: each probe sentence's words with their
    scores (words from ``vocabulary``, else ids). Targets are ``y`` when given, otherwise
    the predictions. It never changes the model, the optimiser or the training's random
    state. The event files are written with TensorBoard's own writer, so the callback
    works on every Keras backend without TensorFlow.

    Args:
        explainer: a ``kd.Explainer`` of the model being trained or evaluated.
        x: probe inputs (a small batch).
        y: their labels, used as targets. Defaults to None (the predictions).
        log_dir: TensorBoard log directory. Defaults to "logs/explanations".
        save_maps: also write ``maps_{step:04d}.npz`` (inputs, maps, targets) in
            ``log_dir``. Defaults to False.
        max_images: images per image summary. Defaults to 8.
        deletion_steps: points of the deletion curve. Defaults to 16.
        vocabulary: token models: a list of tokens or a file (id = position) to show
            words instead of ids. Defaults to None.

    Example:
        >>> callback = kd.callbacks.ExplanationCallback(explainer, x_val[:8], y_val[:8],
        ...                                             log_dir="logs/run1")
        >>> model.fit(x, y, validation_data=(x_val, y_val), callbacks=[callback])
    """

    def __init__(self, explainer, x, y=None, log_dir="logs/explanations", save_maps=False,
                 max_images=8, deletion_steps=16, vocabulary=None):
        super().__init__()
        from keras_dance.explainer import Explainer

        if not isinstance(explainer, Explainer):
            raise TypeError(f"Expected `explainer` to be a kd.Explainer. Received: {explainer!r}")
        self.explainer = explainer
        self.x = explainer.validate(x)
        self.y = None if y is None else np.asarray(y).astype(np.int32)
        if self.y is not None and self.y.shape != (len(self.x),):
            raise ValueError(f"Expected `y` of shape ({len(self.x)},). Received: y.shape={self.y.shape}")
        self.log_dir = str(log_dir)
        self.save_maps = bool(save_maps)
        from keras_dance import _validation

        self.max_images = _validation.check_positive_int(max_images, "max_images")
        self.deletion_steps = int(deletion_steps)
        self.vocabulary = None
        if vocabulary is not None:
            if not explainer.tokens:
                raise ValueError("Expected `vocabulary` only for token models. Received: a "
                                 f"vocabulary for inputs of shape {explainer.input_shape}")
            from keras_dance.export import read_vocabulary

            self.vocabulary = read_vocabulary(vocabulary)
        self._writer = None
        self._epoch = None
        self._evaluations = 0

    def set_model(self, model):
        super().set_model(model)
        if model is not self.explainer.model:
            raise ValueError(
                "Expected the callback's model to be the explainer's model. Received: a "
                f"callback on {model.name!r} for an explainer of {self.explainer.model.name!r}"
            )

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_end(self, logs=None):
        self._epoch = None

    def on_test_end(self, logs=None):
        step = self._epoch if self._epoch is not None else self._evaluations
        self._evaluations += 1
        self.write(step)

    def write(self, step):
        """Computes the maps and writes the summaries for ``step``."""
        from keras_dance.metrics import deletion, sparseness

        maps, details = self.explainer.explain(self.x, self.y, return_details=True)
        targets = details["targets"]
        if self._writer is None:
            self._writer = SummaryWriter(self.log_dir)
        gini = sparseness(maps)
        tokens = self.explainer.tokens
        pad = (self.explainer.model_view.pad_id or 0) if tokens else 0.0
        auc = deletion(self.explainer.model, self.x, maps, targets, steps=self.deletion_steps,
                       preprocess=self.explainer.preprocess, baseline=pad)
        writer = self._writer
        writer.scalar("explanations/sparseness", float(np.mean(gini)), step)
        writer.scalar("explanations/deletion_auc", float(np.mean(auc)), step)
        if self.x.ndim == 4:
            shown = self.x[:self.max_images]
            low, high = float(shown.min()), float(shown.max())
            image = (shown - low) / (high - low) if high > low else np.zeros_like(shown)
            writer.image("explanations/input", image, step, self.max_images)
            writer.image("explanations/overlay",
                         overlays(self.x[:self.max_images], maps[:self.max_images]), step,
                         self.max_images)
        if tokens and maps.ndim == 2:
            writer.text("explanations/text", self._sentences(maps, targets), step)
        writer.flush()
        if self.save_maps:
            os.makedirs(self.log_dir, exist_ok=True)
            with atomic_file(Path(self.log_dir) / f"maps_{step:04d}.npz") as temporary:
                np.savez(temporary, inputs=self.x, maps=maps, targets=targets)

    def _sentences(self, maps, targets):
        """One Markdown line per probe sentence: ``word (score)``, padding left out."""
        pad = self.explainer.model_view.pad_id
        lines = []
        for ids, scores, target in zip(self.x[:self.max_images], maps, targets):
            words = [(self.vocabulary[i] if self.vocabulary and i < len(self.vocabulary)
                      else str(i), score) for i, score in zip(ids, scores) if i != pad]
            lines.append(f"class {target}: " + " ".join(f"{w} ({s:+.3f})" for w, s in words))
        return lines
