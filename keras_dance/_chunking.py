"""Chunked reductions inside compiled TensorFlow: the memory knob's mechanism."""

import tensorflow as tf


def chunked_reduce(fn, num_items, per_pass, init, combine):
    """Reduces ``fn`` over ``num_items`` items processed ``per_pass`` at a time.

    ``result = combine(...combine(combine(init, fn(0, s0)), fn(s0, s1))...)`` where every
    call ``fn(start, size)`` handles the items ``start .. start + size - 1``. ``size`` is
    always a static Python int (``per_pass`` for the full chunks, then the remainder), so
    every shape inside ``fn`` is static apart from the batch axis; the full chunks run in
    one ``tf.while_loop``, not a Python loop, so the graph does not grow with
    ``num_items``.

    Args:
        fn: ``fn(start: int32 scalar tensor or int, size: int) -> nested tensors``.
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
        acc = combine(acc, fn(tf.constant(0, tf.int32), per_pass))
    elif full > 1:
        def body(i, acc):
            return i + 1, combine(acc, fn(i * per_pass, per_pass))

        # parallel_iterations=1: the chunks are independent of each other, so TensorFlow
        # would otherwise run up to ten of them at once and multiply the memory bound.
        _, acc = tf.while_loop(
            lambda i, acc: i < full, body, (tf.constant(0, tf.int32), acc),
            parallel_iterations=1,
        )
    if remainder:
        acc = combine(acc, fn(tf.constant(full * per_pass, tf.int32), remainder))
    return acc


def chunked_sum(fn, num_items, per_pass, init):
    """``chunked_reduce`` with addition: ``init + sum over chunks of fn(start, size)``."""
    return chunked_reduce(
        fn, num_items, per_pass, init,
        lambda acc, value: tf.nest.map_structure(tf.add, acc, value),
    )
