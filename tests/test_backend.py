"""The backend seam: its interface is complete, and each piece equals what it replaced."""

import numpy as np
import pytest
import tensorflow as tf

from keras_dance import backend
from keras_dance._similarity import ssim


def test_the_active_module_implements_the_whole_interface():
    module = backend.module()
    missing = [name for name in backend.INTERFACE if not callable(getattr(module, name, None))]
    assert not missing
    documented = backend.__doc__
    assert all(f"``{name}(" in documented for name in backend.INTERFACE)


@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_every_backend_module_implements_the_whole_interface(framework):
    pytest.importorskip(framework)
    import importlib

    module = importlib.import_module(backend.MODULES[framework])
    assert not [name for name in backend.INTERFACE if not callable(getattr(module, name, None))]


def test_the_torch_seam_equals_tensorflows_piece_by_piece():
    """The PyTorch module's pieces on PyTorch tensors, in this (TensorFlow) process, against
    the TensorFlow module: gradients where unconnected, late cotangents, gathers, the hash,
    the root, resizing and Guided Backprop's gradient (the maps are compared end to end in
    test_backends.py)."""
    torch = pytest.importorskip("torch")
    import importlib

    seam = importlib.import_module(backend.MODULES["torch"])
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    # A gradient inside a gradient (an attack through a map) is differentiable ...
    outer = seam.gradient(lambda v: seam.gradient(lambda w: torch.sum(w ** 3, 1), v)[:, 0], x)
    np.testing.assert_allclose(outer.detach(), [[6.0, 0.0], [18.0, 0.0]])
    # ... and inside a compiled function (no_grad) the seam keeps no graph.
    compiled = seam.compile(lambda v: seam.gradient(lambda w: torch.sum(w ** 3, 1), v))
    assert not compiled(x).requires_grad
    with torch.no_grad():  # as inside the library's compiled functions
        np.testing.assert_array_equal(seam.gradient(lambda v: v[:, 0] ** 2, x), [[2.0, 0.0], [6.0, 0.0]])
        np.testing.assert_array_equal(seam.gradient(lambda v: torch.zeros(2), x), np.zeros((2, 2)))
        value, pullback = seam.vjp(lambda v: v * v, x)
        np.testing.assert_allclose(pullback(torch.sign(value - 5.0)), [[-2, -4], [6, 8]])
        assert seam.is_connected(lambda v: v * 2.0, x)
        assert not seam.is_connected(lambda v: torch.ones(2), x)
        assert not seam.is_connected(lambda v: v.long() * 2, x)  # through integers: no path
        assert seam.is_connected(lambda pair: pair[1] * 2.0, [x, x])
        values = np.arange(2 * 3 * 4).reshape(2, 3, 4)
        np.testing.assert_array_equal(seam.gather_nd(torch.tensor(values), [[1, 2, 3], [0, 0, 1]]),
                                      [23, 1])
        written = seam.scatter_nd_update(torch.tensor(values), torch.tensor([[1, 2, 3]]),
                                         torch.tensor([-1]))
        want = values.copy()
        want[1, 2, 3] = -1
        np.testing.assert_array_equal(written, want)
        for axis in (1, 2):
            indices = np.array([[2, 0], [1, 1]])
            np.testing.assert_array_equal(
                seam.batched_take(torch.tensor(values), torch.tensor(indices), axis),
                backend.batched_take(tf.constant(values), tf.constant(indices), axis))
        bits = np.random.default_rng(0).integers(0, 2**32, 100_000, dtype=np.uint64)
        np.testing.assert_array_equal(seam.hash32(torch.tensor(bits.astype(np.int64))).numpy(),
                                      backend.hash32(tf.constant(bits.astype(np.uint32))).numpy())
        roots = np.random.default_rng(1).uniform(0, 40, 100_000).astype(np.float32)
        exact = np.sqrt(roots.astype(np.float64)).astype(np.float32)  # correctly rounded
        np.testing.assert_array_equal(seam.sqrt(torch.tensor(roots)).numpy(), exact)
        np.testing.assert_array_equal(backend.sqrt(tf.constant(roots)).numpy(), exact)
        image = np.random.default_rng(2).normal(size=(2, 3, 4)).astype(np.float32)
        np.testing.assert_allclose(seam.resize_aligned(torch.tensor(image), (7, 9)),
                                   backend.resize_aligned(tf.constant(image), (7, 9)), atol=1e-6)
        signs = torch.tensor([1.0, -1.0, 2.0])
        grad = seam.gradient(lambda v: seam.positive_gradient(v) * signs, torch.tensor([1.0, -2.0, 3.0]))
        np.testing.assert_array_equal(grad, [1.0, 0.0, 2.0])
        out, = seam.map_chunks(lambda rows: (rows * 2.0,), [torch.arange(10.0)], 3, [((), "float32")])
        np.testing.assert_array_equal(out, np.arange(10) * 2.0)
        assert seam.fori_loop(4, lambda i, acc: acc * 10 + i + 1, 0) == 1234


def test_an_unsupported_backend_is_named(monkeypatch):
    import keras

    monkeypatch.setattr(keras.backend, "backend", lambda: "openvino")
    with pytest.raises(RuntimeError, match="Received: backend='openvino'"):
        backend.module()


def test_gradient_is_zero_where_unconnected_and_vjp_pulls_back_a_late_cotangent():
    x = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(backend.gradient(lambda v: v[:, 0] ** 2, x),
                                  [[2.0, 0.0], [6.0, 0.0]])
    np.testing.assert_array_equal(backend.gradient(lambda v: tf.zeros([2]), x), np.zeros((2, 2)))
    value, pullback = backend.vjp(lambda v: v * v, x)
    # The cotangent is written from the value (as the decoy solver's penalty is).
    np.testing.assert_allclose(pullback(tf.sign(value - 5.0)), [[-2, -4], [6, 8]])
    assert backend.is_connected(lambda v: v * 2.0, x)
    assert not backend.is_connected(lambda v: tf.ones([2]), x)
    assert backend.is_connected(lambda pair: pair[1] * 2.0, [x, x])


def test_gathers_address_rows_windows_and_per_row_indices():
    values = tf.reshape(tf.range(2 * 3 * 4), (2, 3, 4))
    np.testing.assert_array_equal(backend.gather_nd(values, [[1, 2, 3], [0, 0, 1]]), [23, 1])
    taken = backend.batched_take(values, tf.constant([[2, 0], [1, 1]]), axis=1)
    np.testing.assert_array_equal(taken, np.stack([values[0].numpy()[[2, 0]],
                                                   values[1].numpy()[[1, 1]]]))


def test_positive_gradient_is_the_identity_forward_and_keeps_positive_gradients():
    x = tf.constant([1.0, -2.0, 3.0])
    np.testing.assert_array_equal(backend.positive_gradient(x), x)
    grad = backend.gradient(lambda v: backend.positive_gradient(v) * [1.0, -1.0, 2.0], x)
    np.testing.assert_array_equal(grad, [1.0, 0.0, 2.0])


@pytest.mark.parametrize("shape, size", [((2, 3, 4), (7, 9)), ((3, 5), (11,)), ((1, 2, 2), (2, 5))])
def test_resize_aligned_equals_tensorflows_corner_aligned_bilinear(shape, size):
    values = tf.constant(np.random.default_rng(0).normal(size=shape).astype(np.float32))
    got = backend.resize_aligned(values, size)
    image = values[..., None] if len(size) == 2 else values[:, :, None, None]
    want = tf.compat.v1.image.resize_bilinear(image, size if len(size) == 2 else (size[0], 1),
                                              align_corners=True)
    want = want[..., 0] if len(size) == 2 else want[:, :, 0, 0]
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_map_chunks_and_fori_loop_cover_every_row_once_in_order():
    x = tf.range(10, dtype=tf.float32)
    out, = backend.map_chunks(lambda rows: (rows * 2.0,), [x], 3, [((), "float32")])
    np.testing.assert_array_equal(out, np.arange(10) * 2.0)
    visits = backend.fori_loop(4, lambda i, acc: acc * 10 + tf.cast(i, tf.int64) + 1,
                               tf.constant(0, tf.int64))
    assert int(visits) == 1234


def test_numpy_ssim_equals_tensorflows():
    rng = np.random.default_rng(0)
    a = rng.uniform(size=(3, 16, 16)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1).astype(np.float32)
    for size in (11, 7, 3):
        want = tf.image.ssim(a[..., None], b[..., None], max_val=1.0, filter_size=size)
        # float64 windows against TensorFlow's float32 ones.
        np.testing.assert_allclose(ssim(a, b, filter_size=size), want, atol=2e-6)


def _numpy_uniform(shape, seed, streams, salt=0x27D4EB2F):
    """The counter-based stream in plain NumPy uint32 arithmetic: the reference every
    backend's ``_random`` must equal bit for bit."""
    def fmix(h):
        h = h ^ (h >> np.uint32(16))
        h = h * np.uint32(0x85EBCA6B)
        h = h ^ (h >> np.uint32(13))
        h = h * np.uint32(0xC2B2AE35)
        return h ^ (h >> np.uint32(16))

    with np.errstate(over="ignore"):
        folded = np.uint32((seed * 0x9E3779B1 + salt) & 0xFFFFFFFF)
        key = fmix(np.asarray(streams, np.uint32)[:, None] * np.uint32(0x85EBCA77) + folded)
        counter = np.arange(int(np.prod(shape)), dtype=np.uint32)[None]
        bits = fmix(counter * np.uint32(0xC2B2AE3D) + key)
    values = ((bits >> np.uint32(8)).astype(np.float32) + 0.5) * np.float32(1.0 / (1 << 24))
    return values.reshape((-1,) + tuple(shape))


@pytest.mark.parametrize("seed", [0, 7, 2**40 + 3, 2**63 - 1])
def test_random_streams_equal_a_numpy_uint32_reference_bit_for_bit(seed):
    import keras_dance._random as random

    streams = [0, 1, 99, 2**20]
    np.testing.assert_array_equal(random.uniform((3, 5), seed, tf.constant(streams)),
                                  _numpy_uniform((3, 5), seed, streams))
    compiled = tf.function(lambda s: random.uniform((4,), seed, s), jit_compile=True)
    np.testing.assert_array_equal(compiled(tf.constant(streams)),
                                  _numpy_uniform((4,), seed, streams))
