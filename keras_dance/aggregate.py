"""Reducers over the decoy axis (pure functions; streaming forms for chunked use)."""

import tensorflow as tf

AGGREGATIONS = ("range", "mean")


def range_aggregate(maps, axis=0):
    """DANCE Eq. 3: ``Z_i = max_j E_j,i − min_j E_j,i`` over the decoy axis (≥ 0)."""
    return tf.reduce_max(maps, axis=axis) - tf.reduce_min(maps, axis=axis)


def mean_aggregate(maps, axis=0):
    """The paper's "mean" ablation: ``Z_i = (1/D) Σ_j E_j,i``."""
    return tf.reduce_mean(maps, axis=axis)


class Reducer:
    """Streaming form for chunks of decoy maps: ``partial`` per chunk, ``merge``, ``result``.

    Range keeps ``(max, min)``, mean keeps the sum; both merge associatively, so chunking
    over decoys does not change the result beyond float summation order (mean).
    """

    def __init__(self, aggregation):
        if aggregation not in AGGREGATIONS:
            raise ValueError(
                f"Expected `aggregation` to be one of {list(AGGREGATIONS)}. "
                f"Received: aggregation={aggregation!r}"
            )
        self.aggregation = aggregation

    def init(self, like):
        if self.aggregation == "range":
            return (tf.fill(tf.shape(like), -float("inf")), tf.fill(tf.shape(like), float("inf")))
        return (tf.zeros_like(like),)

    def partial(self, maps):
        """The state of one chunk ``maps (k, …)``."""
        if self.aggregation == "range":
            return (tf.reduce_max(maps, 0), tf.reduce_min(maps, 0))
        return (tf.reduce_sum(maps, 0),)

    def merge(self, state, other):
        if self.aggregation == "range":
            return (tf.maximum(state[0], other[0]), tf.minimum(state[1], other[1]))
        return (state[0] + other[0],)

    def result(self, state, count):
        if self.aggregation == "range":
            return state[0] - state[1]
        return state[0] / float(count)
