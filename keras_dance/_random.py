"""Counter-based random numbers that are bit-identical in graph mode and under XLA.

TensorFlow's stateless RNG ops give different numbers under XLA when the seed is a
runtime value (seen with TF 2.21: ``stateless_normal`` inside a ``tf.map_fn`` body), which
would make ``jit_compile=True`` change the maps. These generators use only integer
arithmetic that every backend evaluates identically: element ``k`` of stream ``s`` under
``seed`` is a murmur3-finalised hash of ``(seed, s, k)``; many streams are drawn in
one vectorised call.

Gaussian draws are bit-identical on every backend too: Box–Muller's logarithm and cosine
are not the backends' own (TensorFlow's Eigen kernels and XLA's differ in the last bit
for a quarter of the draws) but written here from integer range reduction, IEEE
operations that are correctly rounded everywhere (+, −, ×, ÷, and √ through the seam:
PyTorch's own float32 root is not) and short polynomials,
with every product that feeds a sum passed through ``_unfused`` so that XLA cannot fuse
the pair into one FMA (it does on CPUs with FMA; TensorFlow's graph kernels and PyTorch's
eager ones never do): the same rounding, step by step, on every backend.
"""

import math

import keras
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
    """``shape`` as a tuple of ints when every axis is known (always on JAX), else None.

    ``shape``: a tuple of axis sizes (ints, or scalar tensors for variable-length axes on
    TensorFlow) or a 1-D tensor of them.
    """
    # isinstance, not int(): AutoGraph turns int(tensor) into a cast inside tf.function,
    # and a variable-length axis is a scalar tensor there (never on JAX or PyTorch).
    if isinstance(shape, (tuple, list)):
        if all(isinstance(n, (int, np.integer)) for n in shape):
            return tuple(int(n) for n in shape)
        return None
    try:  # a tensor of sizes: static when its value is known (eagerly)
        return tuple(int(n) for n in np.asarray(keras.ops.convert_to_numpy(shape)))
    except Exception:  # noqa: BLE001 - a symbolic tensor inside a graph
        return None


def _size(shape):
    static = _static(shape)
    if static is not None:
        return int(np.prod(static))
    if not isinstance(shape, (tuple, list)):
        return ops.prod(shape)
    size = 1  # a variable-length axis: a scalar tensor among the ints (TensorFlow)
    for n in shape:
        size = size * n
    return size


def _u32(value):
    return ops.convert_to_tensor(value, "uint32")


def _unit(bits):
    """24 high bits to a float32 in (0, 1)."""
    return (ops.cast(ops.right_shift(bits, _u32(8)), "float32") + 0.5) * (1.0 / (1 << 24))


def _rows(values, shape):
    static = _static(shape)
    if static is not None:
        return ops.reshape(values, (-1,) + static)
    if not isinstance(shape, (tuple, list)):
        return ops.reshape(values, ops.concatenate([ops.convert_to_tensor([-1], "int32"),
                                                    ops.cast(shape, "int32")], 0))
    return ops.reshape(values, ops.stack([ops.convert_to_tensor(-1, "int32")]
                                         + [ops.cast(n, "int32") for n in shape]))


def uniform(shape, seed, streams):
    """Uniform numbers in (0, 1), float32, ``(len(streams), *shape)``.

    Row ``r`` depends only on ``(seed, streams[r])``, never on the other rows.
    """
    return _rows(_unit(_bits(shape, seed, streams, 0x27D4EB2F)), shape)


def _unfused(product):
    """``product`` unchanged, but no longer a bare product: a sum that uses it rounds it
    first on every backend (XLA fuses ``a * b + c`` into an FMA, rounding once)."""
    return ops.maximum(product, -3.0e38)


def _horner(z, coefficients):
    """``Σ_i c_i z^i`` (coefficients from the highest power down), each step unfused."""
    value = ops.full_like(z, coefficients[0])
    for c in coefficients[1:]:
        value = _unfused(value * z) + c
    return value


#: ln 2 as an exact 9-bit head (its products with small integers are exact) and a tail.
_LN2_HEAD, _LN2_TAIL = 0.693359375, -2.121944400546905827679e-4
#: Powers 2^-n, n = 0..24, exact in float32.
_INVERSE_POWERS = [2.0 ** -n for n in range(25)]


def _log_odd(odd):
    """``ln(odd · 2^-24)`` for odd int32 ``odd`` in (0, 2^24), float32, the same bits on
    every backend: ``odd = m · 2^n`` (``n`` found with integer shifts, ``m`` in
    [√½, √2) exact), ``ln m = 2 atanh((m − 1)/(m + 1))`` by its series to s^11."""
    n = ops.zeros_like(odd)
    for step in (16, 8, 4, 2, 1):
        above = ops.greater(ops.right_shift(odd, n + step), 0)
        n = ops.where(above, n + step, n)
    m = ops.cast(odd, "float32") * ops.take(ops.convert_to_tensor(_INVERSE_POWERS,
                                                                   "float32"), n)
    high = ops.greater(m, math.sqrt(2.0))
    m = ops.where(high, m * 0.5, m)
    exponent = ops.cast(n + ops.cast(high, n.dtype) - 24, "float32")
    s = (m - 1.0) / (m + 1.0)
    twice = s + s
    z = s * s
    series = _horner(z, [1 / 11, 1 / 9, 1 / 7, 1 / 5, 1 / 3])
    log_m = twice + _unfused(twice * _unfused(z * series))
    return (log_m + _unfused(exponent * _LN2_TAIL)) + exponent * _LN2_HEAD


def _cos_turns(k):
    """``cos(2π k / 2^23)`` for int32 ``k`` in [0, 2^23), float32, the same bits on every
    backend: the nearest quarter turn ``q`` taken off with integers, the rest
    ``a`` in [−π/4, π/4] through the Taylor polynomials of cos and sin."""
    quarter = ops.right_shift(k + (1 << 20), 21)
    a = ops.cast(k - quarter * (1 << 21), "float32") * (math.pi / 2 / (1 << 21))
    a2 = a * a
    cos_a = 1.0 + _unfused(a2 * _horner(a2, [-1 / 3628800, 1 / 40320, -1 / 720, 1 / 24,
                                              -1 / 2]))
    sin_a = a + _unfused(a * _unfused(a2 * _horner(a2, [-1 / 39916800, 1 / 362880,
                                                        -1 / 5040, 1 / 120, -1 / 6])))
    quadrant = ops.bitwise_and(quarter, 3)
    return ops.where(ops.equal(quadrant, 0), cos_a,
                     ops.where(ops.equal(quadrant, 1), -sin_a,
                               ops.where(ops.equal(quadrant, 2), -cos_a, sin_a)))


def _top23(bits):
    return ops.cast(ops.right_shift(bits, _u32(9)), "int32")


def normal(shape, seed, streams):
    """Standard normal numbers (Box–Muller), float32, ``(len(streams), *shape)``; the same
    bits on every backend. ``|z| ≤ 5.8``: the uniforms have 23 bits."""
    u1 = _top23(_bits(shape, seed, streams, 0x165667B1))
    u2 = _top23(_bits(shape, seed, streams, 0x61C88647))
    log_u1 = _log_odd(u1 + u1 + 1)
    values = backend.sqrt(-2.0 * log_u1) * _cos_turns(u2)
    return _rows(values, shape)
