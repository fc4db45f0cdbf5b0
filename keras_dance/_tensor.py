"""Small tensor helpers every layer above shares: batch expansion, the row budget,
channel handling and probabilities. Written with ``keras.ops``: they run inside any
backend's compiled function.

Expanded batches are laid out copy-major: ``k`` copies of a batch of ``B`` rows become
``k * B`` rows with the input index running fastest (``keras_dance._targets``'s
``tile(k)`` follows the same layout), so methods compose without knowing what the other
does.
"""

from keras import ops, tree


def expand(x, copies):
    """``(B, *f) -> (copies * B, *f)``, copy-major (matches ``Targets.tile``)."""
    tiled = ops.tile(ops.expand_dims(x, 0), [copies] + [1] * len(x.shape))
    return ops.reshape(tiled, (-1,) + tuple(ops.shape(x)[1:]))


def fold(rows, copies):
    """``(copies * B, *f) -> (copies, B, *f)``; inverse of ``expand``'s layout."""
    return ops.reshape(rows, (copies, -1) + tuple(ops.shape(rows)[1:]))


def split_budget(budget, rows_each):
    """How many items fit in one pass of ``budget`` rows when each costs ``rows_each``
    rows (at least 1); ``budget`` None (no limit) gives None.

    The one budget rule: an explainer's ``batch_size`` is the most model rows in one
    forward and backward pass; a method that runs ``k`` items together (noise samples,
    integration points, classes, decoys) fits ``split_budget(budget, rows per item)`` of
    them, and leaves each of them ``split_budget(budget, k)`` rows for what it wraps.
    """
    if budget is None:
        return None
    return max(1, int(budget) // max(1, int(rows_each)))


def with_channels(x):
    """``x`` with a channel axis: feature vectors ``(B, F)`` become ``(B, F, 1)`` (each
    feature a position); other inputs are ``(B, *positions, channels)`` already."""
    return ops.expand_dims(x, -1) if len(x.shape) == 2 else x


def as_map(saliency, x):
    """A ``(B, *positions)`` map repeated over ``x``'s channels, in ``x``'s shape."""
    channels = with_channels(x)
    repeated = ops.broadcast_to(ops.expand_dims(saliency, -1), ops.shape(channels))
    return ops.reshape(repeated, ops.shape(x))


def probabilities(outputs, num_classes):
    """The confidences black-box methods and the metrics weigh: softmax of the logits over
    the class axis, or a sigmoid for one logit (or no class axis)."""
    function = (lambda t: ops.softmax(t, axis=-1)) if num_classes and num_classes > 1 else (
        ops.sigmoid)
    return tree.map_structure(function, outputs)


def take(values, start, size):
    """``values[start:start + size]`` along the first axis; ``start`` may be a traced
    scalar (a loop counter), ``size`` is a Python int."""
    shape = tuple(ops.shape(values))
    return ops.slice(values, [start] + [0] * (len(shape) - 1), (size,) + shape[1:])


def as_rows(values, like):
    """``values`` reshaped to rows of ``like``'s features: ``(-1, *like.shape[1:])``."""
    return ops.reshape(values, (-1,) + tuple(ops.shape(like)[1:]))
