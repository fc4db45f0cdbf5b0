"""What is differentiated: per-row scores on the model's (logit) outputs.

Methods expand a batch of ``B`` inputs into ``k`` copies laid out copy-major, i.e. rows
``(k, B)`` flattened to ``k * B`` with the input index running fastest. ``Targets.tile(k)``
returns the targets for such an expanded batch, so methods compose (SmoothGrad of
Integrated Gradients, the competition over classes, decoys) without knowing what the
targets are.
"""

import keras
import numpy as np
from keras import ops, tree

from keras_dance import _validation, backend


class IndexTargets:
    """Class indices, one per row: the score of row ``r`` is ``outputs[r, ..., index[r]]``.

    For outputs with more than two axes (e.g. segmentation maps) the selected channel is
    averaged over the remaining axes.
    """

    def __init__(self, indices):
        self.indices = ops.cast(ops.convert_to_tensor(indices), "int32")

    def score(self, outputs):
        if isinstance(outputs, (list, tuple)):
            raise ValueError(
                "Expected a callable `targets` for a model with several outputs. "
                f"Received: targets=class indices for {len(outputs)} outputs."
            )
        selected = class_logits(outputs, self.indices)
        if len(outputs.shape) > 2:
            selected = ops.mean(selected, axis=tuple(range(1, len(outputs.shape) - 1)))
        return selected

    def tile(self, copies):
        return IndexTargets(ops.tile(self.indices, [copies]))


def class_logits(outputs, classes):
    """``outputs[r, …, classes[r]]``: each row's class, at every position ``(B, *positions)``."""
    count = outputs.shape[-1]
    one_hot = ops.one_hot(classes, count, dtype=outputs.dtype)
    rank = len(outputs.shape)
    if rank > 2:
        one_hot = ops.reshape(one_hot, (-1,) + (1,) * (rank - 2) + (count,))
    return ops.sum(outputs * one_hot, axis=-1)


def predicted_classes(outputs):
    """The predicted class per row: argmax of the logits, averaged over positions first
    for outputs with more than two axes (segmentation ``(B, H, W, C)``, ``(B, T, C)``)."""
    if len(outputs.shape) > 2:
        outputs = ops.mean(outputs, axis=tuple(range(1, len(outputs.shape) - 1)))
    return ops.cast(ops.argmax(outputs, axis=-1), "int32")


class RegionScore:
    """``targets=(classes, mask)``: class ``c``'s logit averaged over a region of positions.

    For a model whose outputs have positions (``(B, *positions, C)``, e.g. segmentation),
    the score of input ``b`` is ``Σ_p mask[b, p] · out[b, p, c_b] / Σ_p mask[b, p]``.

    Args:
        classes: an int or ``(B,)`` ints.
        mask: boolean ``(*positions)`` (one region for every input) or ``(B, *positions)``.
    """

    def __init__(self, classes, mask):
        self.classes = ops.convert_to_tensor(classes, "int32")
        self.mask = ops.convert_to_tensor(mask, "float32")

    def __call__(self, outputs):
        rank = len(outputs.shape)
        mask = self.mask if len(self.mask.shape) == rank - 1 else self.mask[None]
        mask = ops.broadcast_to(mask, ops.shape(outputs)[:-1])
        classes = ops.broadcast_to(self.classes, ops.shape(outputs)[:1])
        per_position = class_logits(outputs, classes)
        axes = list(range(1, rank - 1))
        return (ops.sum(per_position * ops.cast(mask, outputs.dtype), axis=axes)
                / ops.cast(ops.sum(mask, axis=axes), outputs.dtype))


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
            return as_row_scores(self.fn(outputs))
        blocks = []
        for j in range(self.copies):
            def take(o, j=j):
                rows = ops.shape(o)[0] // self.copies
                return o[j * rows:(j + 1) * rows]
            blocks.append(as_row_scores(self.fn(tree.map_structure(take, outputs))))
        return ops.concatenate(blocks, axis=0)

    def tile(self, copies):
        return CallableTargets(self.fn, self.copies * copies)


def as_row_scores(scores):
    """Sums the scores of several outputs (tf-keras-vis returns a list for those)."""
    if isinstance(scores, (list, tuple)):
        flat = [ops.reshape(s, (ops.shape(s)[0], -1)) for s in scores]
        scores = flat[0]
        for other in flat[1:]:
            scores = scores + other
    scores = ops.convert_to_tensor(scores)
    if len(scores.shape) > 1:
        scores = ops.sum(ops.reshape(scores, (ops.shape(scores)[0], -1)), axis=1)
    return scores


def region_score(targets, batch, output_shapes, num_classes):
    """``targets=(classes, mask)`` checked and made a ``RegionScore``, for a model whose
    output has positions ``(B, *positions, classes)``.

    Raises:
        ValueError: a model without positions, implicit classes, a mask of another shape
            or an empty region, naming the argument.
    """
    if num_classes is None or len(output_shapes[0]) < 3:
        raise ValueError(
            "Expected `targets=(classes, mask)` only for a model whose output has "
            "positions (B, *positions, classes), e.g. segmentation. Received: a tuple "
            f"for outputs of shapes {output_shapes}"
        )
    classes = _validation.as_target_indices(targets[0], batch, num_classes)
    if np.any(classes < 0):
        raise ValueError("Expected explicit classes in `targets=(classes, mask)`.")
    positions = tuple(output_shapes[0][1:-1])
    mask = _validation.as_masks(targets[1], "mask")
    if mask.shape not in (positions, (batch,) + positions) or None in positions:
        raise ValueError(
            f"Expected the region `mask` of shape {positions} or {(batch,) + positions} "
            f"(the output's positions). Received: mask.shape={mask.shape}"
        )
    if np.any(mask.reshape(-1, int(np.prod(positions))).sum(axis=1) == 0):
        raise ValueError("Expected a non-empty region `mask` for every input. Received: "
                         "a mask with no True position")
    return RegionScore(classes, mask)


def _check_indexing(score_fn, outputs):
    """JAX clamps an out-of-range index (``logits[:, 7]`` on a 3-class model reads class
    2) where TensorFlow and PyTorch raise: the score function is also called on a NumPy
    copy of the outputs, which raises IndexError as the other backends do. Anything else
    it raises on NumPy is left to the tensor call (a score function may need tensors)."""
    copy = keras.tree.map_structure(keras.ops.convert_to_numpy, outputs)
    try:
        score_fn(copy)
    except IndexError as error:
        raise ValueError(
            f"Expected `targets` to be a score function on the model's (logit) "
            f"outputs. Received: calling it raised {type(error).__name__}: {error}"
        ) from error
    except Exception:  # noqa: BLE001 - only indexing is checked here
        pass


def check_score_function(score_fn, outputs, count):
    """Calls a user score function on the model's (logit) ``outputs`` for ``count``
    inputs, eagerly, and checks what it returns: one float per input, computed from the
    outputs (a constant score would make every map zero).

    A score function sees whole batches (tf-keras-vis ``CategoricalScore([...])`` holds one
    index per input), so the check runs on the batch it will explain.

    Raises:
        ValueError / TypeError: naming ``targets`` and what was wrong.
    """
    def scores_of(values):
        try:
            scores = score_fn(values)
        except Exception as error:
            raise ValueError(
                f"Expected `targets` to be a score function on the model's (logit) "
                f"outputs. Received: calling it raised {type(error).__name__}: {error}"
            ) from error
        if scores is None or isinstance(scores, (str, bytes)):
            raise TypeError(
                f"Expected `targets` to return float scores, one per input. Received: "
                f"it returned {scores!r}"
            )
        try:  # the reduction the compiled maps apply (lists summed, extra axes summed)
            return as_row_scores(scores)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"Expected `targets` to return float scores, one per input. Received: "
                f"it returned {type(scores).__name__}"
            ) from error

    if backend.name() == "jax":
        _check_indexing(score_fn, outputs)
    scores = scores_of(outputs)
    dtype = keras.backend.standardize_dtype(scores.dtype)
    if not keras.backend.is_float_dtype(dtype):
        raise TypeError(
            "Expected `targets` to return float scores (integer scores have no "
            f"gradient). Received: scores of dtype {dtype}"
        )
    if len(scores.shape) == 0 or scores.shape[0] != count:
        raise ValueError(
            f"Expected `targets` to return one score per input, shape ({count},) "
            f"for {count} inputs. Received: scores of shape {tuple(scores.shape)}"
        )
    if not backend.is_connected(scores_of, outputs):
        raise ValueError(
            "Expected `targets` to return scores computed from the model's outputs; "
            "these do not depend on them, so every map would be zero. Received: a "
            "score function whose result is constant"
        )
