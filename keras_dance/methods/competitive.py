"""Competition for pixels (Gupta & Arora 2019): CGI and a wrapper for complete methods."""

from keras import ops

from keras_dance._chunking import chunked_reduce
from keras_dance._targets import IndexTargets
from keras_dance._tensor import expand, fold, split_budget
from keras_dance.methods.base import SaliencyMethod
from keras_dance.methods.gradient_x_input import GradientXInput


def compete(target_map, class_max, class_min):
    """The competition rule, per coordinate ``i`` (docs/papers.md §2, ties keep the value).

    ``out_i = m_y(i)`` if ``m_y(i) > 0`` and ``m_y(i) >= max_k m_k(i)``;
    ``out_i = m_y(i)`` if ``m_y(i) < 0`` and ``m_y(i) <= min_k m_k(i)``; else ``0``.

    Args:
        target_map: ``m_y``, the target label's map.
        class_max: ``max_k m_k`` over every label (the target included).
        class_min: ``min_k m_k`` over every label (the target included).
    """
    wins_positive = ops.logical_and(target_map > 0, target_map >= class_max)
    wins_negative = ops.logical_and(target_map < 0, target_map <= class_min)
    return ops.where(ops.logical_or(wins_positive, wins_negative), target_map,
                     ops.zeros_like(target_map))


class Competitive(SaliencyMethod):
    """Makes a (complete) method competitive: labels compete for every input coordinate.

    The wrapped method's map ``m_k`` is computed for every label ``k`` — batched over
    labels, in chunks bounded by the explainer's ``batch_size`` — and the target keeps
    coordinate ``i`` only where it wins (``compete``). ``Competitive(GradientXInput())`` is
    CGI. Scores are the model's logits; targets must be class indices.

    Args:
        method: the wrapped method, ideally complete (Gradient⊙Input, Integrated
            Gradients). Defaults to Gradient⊙Input.

    Example:
        >>> import keras_dance as kd
        >>> competitive_ig = kd.methods.Competitive(kd.methods.IntegratedGradients())
    """

    name = "competitive"
    listed = False  # by name alone it is "cgi"

    def __init__(self, method=None):
        from keras_dance.methods import get as get_method

        self.method = get_method("gradient_x_input" if method is None else method)

    @property
    def needs_class_indices(self):
        return True

    def check(self, forward):
        self.method.check(forward)

    def rows_per_input(self, num_classes):
        if num_classes is None:
            raise ValueError(
                "Expected a model with a class axis for a competitive method. "
                "Received: num_classes=None"
            )
        return int(num_classes) * self.method.rows_per_input(num_classes)

    def __call__(self, x, forward, targets, budget=None):
        if not isinstance(targets, IndexTargets):
            raise ValueError(
                "Expected class-index `targets` for a competitive method (labels compete "
                "for coordinates). Received: targets=a score function"
            )
        num_classes = getattr(forward, "num_classes", None)
        self.rows_per_input(num_classes)  # validates num_classes
        inner_rows = self.method.rows_per_input(num_classes)
        classes_per_pass = split_budget(budget, inner_rows) or num_classes
        batch = ops.shape(x)[0]
        target_one_hot = ops.one_hot(targets.indices, num_classes, dtype=x.dtype)  # (B, C)
        extra = [1] * (len(x.shape) - 1)

        def chunk(start, size):
            classes = start + ops.arange(size, dtype="int32")
            rows = expand(x, size)
            maps = fold(
                self.method(rows, forward, IndexTargets(ops.repeat(classes, batch)),
                            split_budget(budget, size)),
                size,
            )  # (size, B, *f)
            is_target = ops.transpose(ops.slice(target_one_hot, [0, start], (batch, size)))
            is_target = ops.reshape(is_target, (size, batch) + tuple(extra))
            return (ops.sum(maps * is_target, axis=0),
                    ops.max(maps, axis=0), ops.min(maps, axis=0))

        def combine(acc, value):
            return acc[0] + value[0], ops.maximum(acc[1], value[1]), ops.minimum(acc[2], value[2])

        init = (ops.zeros_like(x), ops.full(ops.shape(x), -float("inf")),
                ops.full(ops.shape(x), float("inf")))
        target_map, class_max, class_min = chunked_reduce(
            chunk, num_classes, classes_per_pass, init, combine)
        return compete(target_map, class_max, class_min)

    def get_config(self):
        return {"method": {"name": self.method.name, "config": self.method.get_config()}}


class CGI(Competitive):
    """Competitive Gradient⊙Input (CGI): ``Competitive(GradientXInput())``.

    Example:
        >>> import keras_dance as kd
        >>> explainer_method = kd.methods.CGI()
    """

    name = "cgi"
    listed = True

    def __init__(self):
        super().__init__(GradientXInput())

    def get_config(self):
        return {}
