"""Counter-based random numbers that are bit-identical in graph mode and under XLA.

TensorFlow's stateless RNG ops give different numbers under XLA when the seed is a
runtime value (seen with TF 2.21: ``stateless_normal`` inside a ``tf.map_fn`` body), which
would make ``jit_compile=True`` change the maps. These generators use only integer
arithmetic that every backend evaluates identically: element ``k`` of stream ``s`` under
``seed`` is a murmur3-finalised hash of ``(seed, s, k)``; many streams are drawn in
one vectorised call.
"""

import math

import tensorflow as tf

_MASK = 0xFFFFFFFF


def _fmix32(h):
    """murmur3's 32-bit finaliser on int64 tensors holding values in [0, 2^32)."""
    h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 16))
    h = tf.bitwise.bitwise_and(h * 0x85EBCA6B, _MASK)
    h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 13))
    h = tf.bitwise.bitwise_and(h * 0xC2B2AE35, _MASK)
    return tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 16))


def _bits(shape, seed, streams, salt):
    """Hash bits for ``streams`` (a 1-D int tensor) × ``prod(shape)`` counters."""
    # Only the seed's low 32 bits reach the hash (its products are taken modulo 2^32),
    # so reducing it first changes no stream and keeps salted seeds inside int64.
    seed = int(seed) & _MASK if isinstance(seed, int) else seed
    streams = tf.reshape(tf.cast(streams, tf.int64), [-1, 1])
    key = _fmix32(tf.bitwise.bitwise_and(
        tf.cast(seed, tf.int64) * 0x9E3779B1 + streams * 0x85EBCA77 + salt, _MASK))
    counter = tf.range(tf.cast(tf.reduce_prod(shape), tf.int64), dtype=tf.int64)[None]
    return _fmix32(tf.bitwise.bitwise_and(counter * 0xC2B2AE3D + key, _MASK))


def _unit(bits):
    """24 high bits to a float32 in (0, 1)."""
    return (tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) + 0.5) * (1.0 / (1 << 24))


def uniform(shape, seed, streams):
    """Uniform numbers in (0, 1), float32, ``(len(streams), *shape)``.

    Row ``r`` depends only on ``(seed, streams[r])``, never on the other rows.
    """
    values = _unit(_bits(shape, seed, streams, 0x27D4EB2F))
    return tf.reshape(values, tf.concat([[-1], shape], 0))


def normal(shape, seed, streams):
    """Standard normal numbers (Box–Muller), float32, ``(len(streams), *shape)``."""
    u1 = _unit(_bits(shape, seed, streams, 0x165667B1))
    u2 = _unit(_bits(shape, seed, streams, 0x61C88647))
    values = tf.sqrt(-2.0 * tf.math.log(u1)) * tf.cos((2.0 * math.pi) * u2)
    return tf.reshape(values, tf.concat([[-1], shape], 0))
