"""Chunked reductions inside a compiled function: the memory knob's mechanism."""

from keras import ops, tree

from keras_dance import backend


def chunked_reduce(fn, num_items, per_pass, init, combine):
    """Reduces ``fn`` over ``num_items`` items processed ``per_pass`` at a time.

    ``result = combine(...combine(combine(init, fn(0, s0)), fn(s0, s1))...)`` where every
    call ``fn(start, size)`` handles the items ``start .. start + size - 1``. ``size`` is
    always a static Python int (``per_pass`` for the full chunks, then the remainder), so
    every shape inside ``fn`` is static apart from the batch axis; the full chunks run in
    one compiled loop (``backend.fori_loop``, one chunk after another), not a Python
    loop, so the graph does not grow with ``num_items``.

    Args:
        fn: ``fn(start: int32 scalar tensor, size: int) -> nested tensors``.
        num_items: total number of items (Python int, >= 1).
        per_pass: items per call (Python int, >= 1).
        init: initial accumulator (nested tensors with ``fn``'s structure).
        combine: ``combine(accumulator, chunk_result) -> accumulator``.

    Returns:
        The final accumulator.
    """
    per_pass = max(1, min(int(per_pass), int(num_items)))
    full, remainder = divmod(int(num_items), per_pass)
    acc = init
    if full == 1:
        acc = combine(acc, fn(ops.convert_to_tensor(0, "int32"), per_pass))
    elif full > 1:
        acc = backend.fori_loop(full, lambda i, acc: combine(acc, fn(i * per_pass, per_pass)),
                                acc)
    if remainder:
        acc = combine(acc, fn(ops.convert_to_tensor(full * per_pass, "int32"), remainder))
    return acc


def chunked_sum(fn, num_items, per_pass, init):
    """``chunked_reduce`` with addition: ``init + sum over chunks of fn(start, size)``."""
    return chunked_reduce(fn, num_items, per_pass, init,
                          lambda acc, value: tree.map_structure(ops.add, acc, value))
