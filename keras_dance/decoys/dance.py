"""DANCE maps: decoy engine → base method on every decoy → aggregation, in chunks.

docs/papers.md §1, Eq. 3: ``E(x) = agg_j E_base(x̃_j)`` over the decoys ``x̃_j`` of ``x``. The
engine solves the decoys, the base method maps them and a ``Reducer`` folds the maps as
they come, so no more than the memory knob's worth of decoys or maps is alive at once.
"""

from keras import ops

from keras_dance._chunking import chunked_reduce
from keras_dance._tensor import as_rows, fold, split_budget, take


class DecoyMaps:
    """Decoy-enhanced maps of a chunk of inputs, under one memory budget.

    Args:
        engine: a ``DecoyEngine``.
        method: the base saliency method.
        reducer: a ``kd.aggregate.Reducer``.
        forward: ``ModelFunction`` ``x -> logits``.
        batch_size: the memory knob — the most rows (decoys × the method's rows per
            input) in one forward and backward pass.
        rows_per_input: rows the base method evaluates per input when unchunked.

    Attributes:
        inputs_per_pass: inputs whose decoys are held at once.
        decoys_per_pass: decoys solved together per input.
        decoys_per_map_pass: decoys mapped together per input.
        budget: the rows per decoy left to the base method (its ``budget``).
    """

    def __init__(self, engine, method, reducer, forward, batch_size, rows_per_input):
        self.engine, self.method, self.reducer, self.forward = engine, method, reducer, forward
        count = engine.num_decoys
        unit = reducer.unit  # decoys a reducer needs in one chunk (a patch's, "patch_range")
        # Decoys held at once ≤ batch_size rows; their maps in sub-chunks of the same.
        self.inputs_per_pass = split_budget(batch_size, count)
        self.decoys_per_pass = _whole(
            min(count, split_budget(batch_size, self.inputs_per_pass)), unit)
        self.decoys_per_map_pass = _whole(min(
            self.decoys_per_pass,
            split_budget(batch_size, rows_per_input) // self.inputs_per_pass), unit)
        self.budget = split_budget(batch_size, self.decoys_per_map_pass * self.inputs_per_pass)

    def __call__(self, x, targets, fuse=None):
        """``(maps (b, …), feasible fraction (b,), mean perturbation (b,))`` for ``x``;
        ``fuse``: as ``DecoyEngine.solve``."""
        engine, reducer = self.engine, self.reducer
        per_map_pass = self.decoys_per_map_pass
        layer_x = engine.sub_model(x, training=False)  # F_l(x), once for every chunk

        def decoy_chunk(start, size):
            # (size, b, …) patch values of the chunk's decoys
            values, found, change = engine.solve(x, start, size, layer_x, fuse=fuse)

            def map_chunk(first, count):
                part = take(values, first, count)
                decoys = engine.decoy_images(x, start + first, part, fuse=fuse)  # (count, b, …)
                maps = self.method(as_rows(decoys, x), self.forward, targets.tile(count),
                                   self.budget)
                return reducer.partial(fold(maps, count), start + first)

            state = chunked_reduce(map_chunk, size, per_map_pass, reducer.init(x), reducer.merge)
            return (state, ops.sum(ops.cast(found, "float32"), axis=0), ops.sum(change, axis=0))

        def combine(acc, value):
            return reducer.merge(acc[0], value[0]), acc[1] + value[1], acc[2] + value[2]

        batch = ops.shape(x)[0]
        init = (reducer.init(x), ops.zeros((batch,)), ops.zeros((batch,)))
        count = engine.num_decoys
        state, found, change = chunked_reduce(decoy_chunk, count, self.decoys_per_pass, init,
                                              combine)
        return reducer.result(state, count), found / count, change / count


def _whole(decoys, unit):
    """``decoys`` rounded down to a positive multiple of ``unit``."""
    return max(unit, decoys // unit * unit)
