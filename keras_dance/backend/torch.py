"""The seam on PyTorch: ``torch.autograd``, eager loops, ``torch.autograd.Function`` and
int64 arithmetic masked to 32 bits. The interface is documented in
``keras_dance.backend``.

Keras on PyTorch runs eagerly: a "compiled" function here is the function itself, run
under ``torch.no_grad()`` so that its forward passes record no graph for the weights;
the seam's gradients switch recording back on around the one computation they
differentiate (``torch.enable_grad``), and build a differentiable gradient
(``create_graph``) only when an outer differentiation is recording (an attack through a
map, SCAAT's loss on a map). Eager functions read the weights' current values, so an
explainer follows a model that is still training. The memory knob's chunks run one
after another in a Python loop.

Keras gives ``uint32`` tensors as ``int64`` on this backend (PyTorch has no uint32
arithmetic); ``hash32`` works on ``int64`` values in ``[0, 2^32)`` and splits its
products so that they never leave the int64 range.
"""

import keras
import numpy as np
import torch

from keras_dance.backend._common import chunk_loop, interpolation

_MASK = 0xFFFFFFFF


def _device():
    from keras.src.backend.torch.core import get_device  # Keras's own choice of device

    return get_device()


def to_tensor(value, dtype=None):
    if isinstance(value, np.ndarray) and any(step < 0 for step in value.strides):
        value = value.copy()  # a reversed view (x[::-1]): PyTorch takes no negative strides
    if dtype is None and isinstance(value, np.ndarray):
        return torch.as_tensor(value, device=_device())
    return keras.ops.convert_to_tensor(value, dtype)


def to_numpy(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _leaf(x):
    """``x`` as the input of a differentiation: itself when an outer one already records
    it, else a detached copy that requires gradients."""
    x = torch.as_tensor(x)
    if x.requires_grad:
        return x
    return x.detach().requires_grad_(True)


def _zeros_for_none(grad, like):
    return torch.zeros_like(like) if grad is None else grad


def gradient(fn, x):
    outer = torch.is_grad_enabled()  # an enclosing differentiation needs this one's graph
    with torch.enable_grad():
        leaf = _leaf(x)
        total = torch.sum(fn(leaf))
        if not total.requires_grad:
            return torch.zeros_like(leaf)
        (grad,) = torch.autograd.grad(total, leaf, create_graph=outer, allow_unused=True)
    return _zeros_for_none(grad, leaf)


def layer_gradient(fn, x):
    outer = torch.is_grad_enabled()
    captured = []

    def at_layer(output):  # d total / d output, as a zero added there
        delta = torch.zeros_like(output, requires_grad=True)
        captured.append(delta)
        return output + delta

    with torch.enable_grad():
        activations, total = fn(x, at_layer)
        grads = torch.autograd.grad(total, captured, create_graph=outer, allow_unused=True)
    grads = [_zeros_for_none(g, c) for g, c in zip(grads, captured)]
    many = isinstance(activations, (list, tuple))  # several captures, in the model's order
    values = list(activations) if many else [activations]
    if not outer:
        values = [a.detach() for a in values]
    grads = [g.to(a.dtype) for g, a in zip(grads, values)]
    return (values, grads) if many else (values[0], grads[0])


def vjp(fn, x):
    outer = torch.is_grad_enabled()
    with torch.enable_grad():
        leaf = _leaf(x)
        value = fn(leaf)

    def pullback(cotangent):
        if not value.requires_grad:
            return torch.zeros_like(leaf)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(value, leaf, grad_outputs=cotangent,
                                          create_graph=outer, retain_graph=True,
                                          allow_unused=True)
        return _zeros_for_none(grad, leaf)

    return (value if outer else value.detach()), pullback


def _index(index):
    index = torch.as_tensor(index, device=_device()).long()
    return tuple(index[..., k] for k in range(index.shape[-1]))


def gather_nd(values, index):
    return values[_index(index)]


def scatter_nd_update(values, index, updates):
    out = values.clone()
    out[_index(index)] = torch.as_tensor(updates, dtype=values.dtype, device=values.device)
    return out


def batched_take(values, indices, axis):
    indices = torch.as_tensor(indices, device=values.device).long()
    batch, count = indices.shape
    view = [batch] + [1] * (values.ndim - 1)
    view[axis] = count
    shape = list(values.shape)
    shape[axis] = count
    return torch.gather(values, axis, indices.reshape(view).expand(shape))


def is_connected(fn, x):
    leaves = [torch.as_tensor(leaf) for leaf in keras.tree.flatten(x)]
    watched = [leaf.detach().requires_grad_(True) if leaf.is_floating_point() else leaf
               for leaf in leaves]
    inputs = [leaf for leaf in watched if leaf.requires_grad]
    if not inputs:  # integer inputs: no gradient reaches them
        return False
    with torch.enable_grad():
        outputs = keras.tree.flatten(fn(keras.tree.pack_sequence_as(x, watched)))
        total = sum(torch.sum(torch.as_tensor(o).float()) for o in outputs)
        if not torch.is_tensor(total) or not total.requires_grad:
            return False
        grads = torch.autograd.grad(total, inputs, allow_unused=True)
    return any(g is not None for g in grads)


def fori_loop(count, body, init):
    state = init
    for i in range(count):
        state = body(i, state)
    return state


def while_loop(cond, body, state):
    state = tuple(state)
    while bool(cond(*state)):
        state = tuple(body(*state))
    return state


class _PositiveGradient(torch.autograd.Function):
    @staticmethod
    def forward(x):
        return x.view_as(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        del ctx, inputs, output

    @staticmethod
    def backward(ctx, upstream):
        return torch.clamp(upstream, min=0)


def positive_gradient(x):
    return _PositiveGradient.apply(x)


def resize_aligned(values, size):
    out = values
    for axis, (size_in, size_out) in enumerate(zip(values.shape[1:], size), start=1):
        if size_in == size_out:
            continue
        weights = torch.as_tensor(interpolation(int(size_in), int(size_out)),
                                  dtype=out.dtype, device=out.device)
        out = torch.movedim(torch.tensordot(out, weights, dims=([axis], [1])), -1, axis)
    return out


def _times(h, constant):
    """``h · constant mod 2^32`` for ``h`` in [0, 2^32): two 16-bit halves of the
    constant, so that no product leaves int64."""
    low, high = constant & 0xFFFF, constant >> 16
    return (h * low + (((h * high) & 0xFFFF) << 16)) & _MASK


def sqrt(values):
    # float64's root rounded to float32 is float32's correctly rounded root (53 ≥ 2·24 + 2
    # bits); PyTorch's float32 CPU kernel is off by an ulp on about one value in eight.
    return torch.sqrt(values.to(torch.float64)).to(values.dtype)


def hash32(h):
    h = torch.as_tensor(h).to(torch.int64) & _MASK
    h = h ^ (h >> 16)
    h = _times(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = _times(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def compile(fn, jit_compile=False, input_specs=None, variables=()):  # noqa: A001
    # Eager: torch.compile did not pay on the CPU (benchmarks/bench_backends.py's notes);
    # the weights are read as they are at each call.
    del jit_compile, input_specs, variables

    def call(*args):
        with torch.no_grad():
            return fn(*args)

    return call


def map_chunks(fn, inputs, per_pass, output_specs):
    count = int(inputs[0].shape[0])
    pieces = [fn(*[t[start:start + per_pass] for t in inputs])
              for start in range(0, count, per_pass)]
    if not pieces:
        return tuple(torch.zeros((0,) + tuple(shape), device=_device(),
                                 dtype=keras.ops.convert_to_tensor(0, dtype).dtype)
                     for shape, dtype in output_specs)
    return tuple(torch.cat([torch.as_tensor(p[k]).reshape((-1,) + tuple(p[k].shape[1:]))
                            for p in pieces])
                 for k in range(len(output_specs)))


def compile_chunks(fn, per_pass, input_specs, output_specs, jit_compile=False, variables=()):
    return chunk_loop(compile, map_chunks, fn, per_pass, input_specs, output_specs,
                      jit_compile, variables)


def minimise(model, objective):
    trainable = list(model.trainable_variables)
    with torch.enable_grad():
        value, aux = objective()
        grads = torch.autograd.grad(value, [v.value for v in trainable], allow_unused=True)
    grads = [_zeros_for_none(g, v.value) for g, v in zip(grads, trainable)]
    with torch.no_grad():
        model.optimizer.apply(grads, trainable)
    return keras.tree.map_structure(
        lambda t: t.detach() if isinstance(t, torch.Tensor) else t, aux)


def train_step(model, args, step):
    (data,) = args
    return step(data)


def configure_devices(threads=None, compilation_cache=None):
    del compilation_cache  # eager: nothing is compiled
    if threads:
        torch.set_num_threads(threads)


def to_tensorflow(variables):
    del variables
    raise NotImplementedError(
        "Expected a model on the TensorFlow or JAX backend for a SavedModel export. "
        "Received: a model on the PyTorch backend (Keras's own SavedModel export from "
        "PyTorch needs torch_xla). Load the same .keras file with KERAS_BACKEND=jax or "
        "tensorflow and export there (keras-dance export --backend=jax …): the maps are "
        "the same on every backend.")
