"""What is differentiated: per-row scores on the model's (logit) outputs.

Methods expand a batch of ``B`` inputs into ``k`` copies laid out copy-major, i.e. rows
``(k, B)`` flattened to ``k * B`` with the input index running fastest. ``Targets.tile(k)``
returns the targets for such an expanded batch, so methods compose (SmoothGrad of
Integrated Gradients, the competition over classes, decoys) without knowing what the
targets are.
"""

import tensorflow as tf


class IndexTargets:
    """Class indices, one per row: the score of row ``r`` is ``outputs[r, ..., index[r]]``.

    For outputs with more than two axes (e.g. segmentation maps) the selected channel is
    averaged over the remaining axes.
    """

    def __init__(self, indices):
        self.indices = tf.convert_to_tensor(indices, tf.int32)

    def score(self, outputs):
        if isinstance(outputs, (list, tuple)):
            raise ValueError(
                "Expected a callable `targets` for a model with several outputs. "
                f"Received: targets=class indices for {len(outputs)} outputs."
            )
        one_hot = tf.one_hot(self.indices, tf.shape(outputs)[-1], dtype=outputs.dtype)
        rank = len(outputs.shape)
        if rank > 2:
            one_hot = tf.reshape(
                one_hot, tf.concat([[-1], tf.ones([rank - 2], tf.int32), [-1]], 0)
            )
        selected = tf.reduce_sum(outputs * one_hot, axis=-1)
        if rank > 2:
            selected = tf.reduce_mean(selected, axis=list(range(1, rank - 1)))
        return selected

    def tile(self, copies):
        return IndexTargets(tf.tile(self.indices, [copies]))


class CallableTargets:
    """A user score function ``fn(outputs) -> (B,)`` (tf-keras-vis ``Score`` objects work).

    The function always sees outputs for the original ``B`` rows: an expanded batch of
    ``copies * B`` rows is cut into ``copies`` blocks, scored block by block, and the
    scores are concatenated. ``copies`` is a static Python int.
    """

    def __init__(self, fn, copies=1):
        self.fn = fn
        self.copies = copies

    def score(self, outputs):
        if self.copies == 1:
            return _as_row_scores(self.fn(outputs))
        blocks = []
        for j in range(self.copies):
            def take(o, j=j):
                rows = tf.shape(o)[0] // self.copies
                return o[j * rows:(j + 1) * rows]
            blocks.append(_as_row_scores(self.fn(tf.nest.map_structure(take, outputs))))
        return tf.concat(blocks, axis=0)

    def tile(self, copies):
        return CallableTargets(self.fn, self.copies * copies)


def _as_row_scores(scores):
    """Sums the scores of several outputs (tf-keras-vis returns a list for those)."""
    if isinstance(scores, (list, tuple)):
        scores = tf.add_n([tf.reshape(s, [tf.shape(s)[0], -1]) for s in scores])
    scores = tf.convert_to_tensor(scores)
    if len(scores.shape) > 1:
        scores = tf.reduce_sum(tf.reshape(scores, [tf.shape(scores)[0], -1]), axis=1)
    return scores
