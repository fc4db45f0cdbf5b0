"""Counter-based random numbers that are bit-identical in graph mode and under XLA.

TensorFlow's stateless RNG ops give different numbers under XLA when the seed is a
runtime value (seen with TF 2.21: ``stateless_normal`` inside a ``tf.map_fn`` body), which
would make ``jit_compile=True`` change the maps. These generators use only integer
arithmetic that every backend evaluates identically: element ``k`` of stream ``s`` under
``seed`` is a murmur3-finalised hash of ``(seed, s, k)``; many streams are drawn in
one vectorised call.
"""

import math

import numpy as np

from keras import ops

from keras_dance import backend

_MASK = 0xFFFFFFFF


def _bits(shape, seed, streams, salt):
    """Hash bits (uint32) for ``streams`` (a 1-D int tensor) × ``prod(shape)`` counters.

    All arithmetic is on uint32, wrapping modulo 2^32 as every backend's integers do: the
    seed's low 32 bits and the salt are folded on the host, then one multiply-add per
    stream and per counter and two murmur3 finalisers.
    """
    folded = (int(seed) * 0x9E3779B1 + salt) & _MASK  # seeds are Python ints
    streams = ops.reshape(ops.cast(streams, "uint32"), (-1, 1))
    key = backend.hash32(streams * _u32(0x85EBCA77) + _u32(folded))
    counter = ops.cast(ops.arange(_size(shape), dtype="int32"), "uint32")[None]
    return backend.hash32(counter * _u32(0xC2B2AE3D) + key)


def _static(shape):
    """``shape`` as a tuple of ints when every axis is known (always on JAX), else None."""
    try:
        return tuple(int(n) for n in shape)
    except TypeError:
        return None


def _size(shape):
    static = _static(shape)
    return int(np.prod(static)) if static is not None else ops.prod(shape)


def _u32(value):
    return ops.convert_to_tensor(value, "uint32")


def _unit(bits):
    """24 high bits to a float32 in (0, 1)."""
    return (ops.cast(ops.right_shift(bits, _u32(8)), "float32") + 0.5) * (1.0 / (1 << 24))


def _rows(values, shape):
    static = _static(shape)
    if static is not None:
        return ops.reshape(values, (-1,) + static)
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
