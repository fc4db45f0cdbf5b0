"""Counter-based random numbers that are bit-identical in graph mode and under XLA.

TensorFlow's stateless RNG ops give different numbers under XLA when the seed is a
runtime value (seen with TF 2.21: ``stateless_normal`` inside a ``tf.map_fn`` body), which
would make ``jit_compile=True`` change the maps. These generators use only integer
arithmetic that every backend evaluates identically: element ``k`` of stream ``s`` under
``seed`` is a murmur3-finalised hash of ``(seed, s, k)``; many streams are drawn in
one vectorised call.
"""

import math

from keras import ops

from keras_dance import backend

_MASK = 0xFFFFFFFF


def _bits(shape, seed, streams, salt):
    """Hash bits for ``streams`` (a 1-D int tensor) × ``prod(shape)`` counters."""
    # Only the seed's low 32 bits reach the hash (its products are taken modulo 2^32),
    # so reducing it first changes no stream and keeps salted seeds inside int64.
    seed = int(seed) & _MASK if isinstance(seed, int) else seed
    streams = ops.reshape(ops.cast(streams, "int64"), (-1, 1))
    key = backend.hash32(ops.bitwise_and(
        ops.cast(seed, "int64") * 0x9E3779B1 + streams * 0x85EBCA77 + salt, _MASK))
    counter = ops.expand_dims(ops.arange(ops.cast(ops.prod(shape), "int64"), dtype="int64"), 0)
    return backend.hash32(ops.bitwise_and(counter * 0xC2B2AE3D + key, _MASK))


def _unit(bits):
    """24 high bits to a float32 in (0, 1)."""
    return (ops.cast(ops.right_shift(bits, 8), "float32") + 0.5) * (1.0 / (1 << 24))


def _rows(values, shape):
    return ops.reshape(values, ops.concatenate([ops.convert_to_tensor([-1], "int32"),
                                                ops.cast(shape, "int32")], 0))


def uniform(shape, seed, streams):
    """Uniform numbers in (0, 1), float32, ``(len(streams), *shape)``.

    Row ``r`` depends only on ``(seed, streams[r])``, never on the other rows.
    """
    return _rows(_unit(_bits(shape, seed, streams, 0x27D4EB2F)), shape)


def normal(shape, seed, streams):
    """Standard normal numbers (Box–Muller), float32, ``(len(streams), *shape)``."""
    u1 = _unit(_bits(shape, seed, streams, 0x165667B1))
    u2 = _unit(_bits(shape, seed, streams, 0x61C88647))
    values = ops.sqrt(-2.0 * ops.log(u1)) * ops.cos((2.0 * math.pi) * u2)
    return _rows(values, shape)
