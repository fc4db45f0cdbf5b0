"""The seam on JAX: ``jax.grad``/``jax.vjp``, ``jax.jit``, ``lax`` loops, ``custom_vjp``
and ``jax.numpy``'s uint32 arithmetic. The interface is documented in
``keras_dance.backend``.

Compiled functions take the model's weights as arguments (``compile(…, variables=)``,
read inside a ``keras.StatelessScope``), so an explainer follows a model that is still
training instead of keeping the weights it was traced with. A function is compiled once
per input shape (JAX's shape cache); the memory knob's chunks run one after another in
``lax.map``.
"""

import os

import jax
import jax.numpy as jnp
import keras
import numpy as np
from jax import lax

from keras_dance.backend._common import interpolation


def to_tensor(value, dtype=None):
    return jnp.asarray(value, dtype=dtype)


def to_numpy(value):
    return np.asarray(value)


def gradient(fn, x):
    return jax.grad(lambda v: jnp.sum(fn(v)))(x)


def layer_gradient(fn, x):
    shape = jax.eval_shape(lambda v: fn(v)[0], x)
    many = isinstance(shape, (list, tuple))
    zeros = [jnp.zeros(s.shape, s.dtype) for s in (shape if many else [shape])]

    def total(deltas):
        pending = iter(deltas)  # the captures, in the order the model makes them

        def at_layer(output):
            return output + next(pending).astype(output.dtype)

        activations, value = fn(x, at_layer)
        return value, activations

    (_, activations), grads = jax.value_and_grad(total, has_aux=True)(zeros)
    return (activations, list(grads)) if many else (activations, grads[0])


def vjp(fn, x):
    value, pullback = jax.vjp(fn, x)
    return value, lambda cotangent: pullback(cotangent)[0]


def gather_nd(values, index):
    index = jnp.asarray(index)
    return values[tuple(index[..., k] for k in range(index.shape[-1]))]


def scatter_nd_update(values, index, updates):
    index = jnp.asarray(index)
    return values.at[tuple(index[..., k] for k in range(index.shape[-1]))].set(updates)


def batched_take(values, indices, axis):
    return jax.vmap(lambda row, index: jnp.take(row, index, axis=axis - 1))(values, indices)


def is_connected(fn, x):
    # JAX gives zeros, never None, where the output does not depend on the input: a probe
    # whose every gradient entry is exactly zero means every map would be zero.
    leaves, tree = jax.tree_util.tree_flatten(x)
    leaves = [jnp.asarray(leaf, jnp.float32) for leaf in leaves]

    def total(values):
        outputs = fn(jax.tree_util.tree_unflatten(tree, values))
        return sum(jnp.sum(jnp.asarray(o, jnp.float32)) for o in jax.tree_util.tree_leaves(outputs))

    grads = jax.grad(total)(leaves)
    return any(bool(jnp.any(g != 0)) for g in grads)


def fori_loop(count, body, init):
    return lax.fori_loop(0, count, body, init)


def while_loop(cond, body, state):
    return lax.while_loop(lambda s: cond(*s), lambda s: tuple(body(*s)), tuple(state))


@jax.custom_vjp
def positive_gradient(x):
    return x


positive_gradient.defvjp(lambda x: (x, None), lambda _, upstream: (jnp.maximum(upstream, 0),))


def resize_aligned(values, size):
    out = values
    for axis, (size_in, size_out) in enumerate(zip(values.shape[1:], size), start=1):
        if size_in == size_out:
            continue
        weights = jnp.asarray(interpolation(int(size_in), int(size_out)), out.dtype)
        out = jnp.moveaxis(jnp.tensordot(out, weights, axes=[[axis], [1]]), -1, axis)
    return out


def sqrt(values):
    return jnp.sqrt(values)


def hash32(h):
    h = jnp.asarray(h, jnp.uint32)
    h = h ^ (h >> jnp.uint32(16))
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> jnp.uint32(13))
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> jnp.uint32(16))


def compile(fn, jit_compile=False, input_specs=None, variables=()):  # noqa: A001
    del jit_compile, input_specs  # jax.jit compiles with XLA always; shapes are cached
    variables = list(variables)
    if not variables:
        return jax.jit(fn)

    def stateless(values, *args):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return fn(*args)

    jitted = jax.jit(stateless)

    def call(*args):
        return jitted([v.value for v in variables], *args)

    return call


def map_chunks(fn, inputs, per_pass, output_specs):
    count = inputs[0].shape[0]  # static under jax.jit: one compilation per batch size
    if count <= per_pass:
        # One chunk: no loop. XLA:CPU runs a while loop's body about 2.5× slower than the
        # same ops outside one (measured in benchmarks/bench_backends.py's notes).
        return tuple(fn(*inputs))
    chunks = -(-count // per_pass)
    padded = [jnp.concatenate([t, jnp.repeat(t[-1:], chunks * per_pass - count, axis=0)])
              for t in inputs]
    stacked = [t.reshape((chunks, per_pass) + t.shape[1:]) for t in padded]
    outputs = lax.map(lambda rows: tuple(fn(*rows)), stacked)
    return tuple(o.reshape((chunks * per_pass,) + o.shape[2:])[:count] for o in outputs)


def bucket(count, per_pass):
    """The rows a chunk of ``count`` inputs is padded to: the next power of two, at most
    ``per_pass`` (so at most ⌈log₂ per_pass⌉ + 1 shapes, hence compilations, ever)."""
    return min(per_pass, 1 << max(count - 1, 0).bit_length())


def compile_chunks(fn, per_pass, input_specs, output_specs, jit_compile=False, variables=()):
    # jax.jit compiles once per input shape: a batch of a new size would compile the whole
    # explanation again (seconds to minutes). Here the chunk is compiled alone, and the
    # batch runs as full chunks of per_pass rows plus one last chunk padded (with copies
    # of its last row, whose results are dropped) to a power of two: every batch size
    # reuses at most ⌈log₂ per_pass⌉ + 1 compilations. The chunks are dispatched one after
    # another (asynchronously); XLA:CPU runs a chunk outside a loop faster than inside
    # lax.map (benchmarks/bench_backends.py's notes).
    del input_specs, jit_compile
    chunk = compile(fn, variables=variables)

    def run(*inputs):
        # Slicing and padding on the host with NumPy: JAX's eager ops compile once per
        # shape too (0.3 s per new batch size, measured), which would undo the buckets.
        # Inside a user's jax.jit (tracers) the same is done with jax.numpy.
        traced = any(isinstance(t, jax.core.Tracer) for t in inputs)
        xp = jnp if traced else np
        inputs = [xp.asarray(t) for t in inputs]
        count = inputs[0].shape[0]
        if count == 0:
            return tuple(xp.zeros((0,) + tuple(shape), dtype) for shape, dtype in output_specs)
        pieces = []
        for start in range(0, count, per_pass):
            rows = [t[start:start + per_pass] for t in inputs]
            size, padded = rows[0].shape[0], bucket(rows[0].shape[0], per_pass)
            if padded > size:
                rows = [xp.concatenate([r, xp.repeat(r[-1:], padded - size, axis=0)])
                        for r in rows]
            outputs = chunk(*rows)
            if padded > size:
                outputs = [xp.asarray(o)[:size] for o in outputs]
            pieces.append(outputs)
        if len(pieces) == 1:
            return tuple(pieces[0])
        return tuple(xp.concatenate([xp.asarray(p) for p in parts]) for parts in zip(*pieces))

    return run


def _current(variables):
    """The variables' values as the active stateless scope sees them."""
    return [variable.value for variable in variables]


def minimise(model, objective):
    # Inside train_step's scope: differentiate the objective with respect to the trainable
    # values, everything else held at its current value; updates the objective makes to
    # other variables (batch-norm statistics, seeds) come back as an auxiliary output.
    trainable = list(model.trainable_variables)
    others = [v for v in model.variables if all(v is not t for t in trainable)]
    held = _current(others)

    def loss(values):
        mapping = list(zip(trainable, values)) + list(zip(others, held))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            value, aux = objective()
        updated = [scope.get_current_value(v) for v in others]
        return value, (aux, updated)

    (_, (aux, updated)), grads = jax.value_and_grad(loss, has_aux=True)(_current(trainable))
    for variable, value in zip(others, updated):
        if value is not None:
            variable.assign(value)
    model.optimizer.apply_gradients(zip(grads, trainable))
    return aux


def train_step(model, args, step):
    state, data = args
    groups = [model.trainable_variables, model.non_trainable_variables,
              model.optimizer.variables, model.metrics_variables]
    mapping = [pair for variables, values in zip(groups, state)
               for pair in zip(variables, values)]
    with keras.StatelessScope(state_mapping=mapping) as scope:
        logs = step(data)
    state = tuple([value if (new := scope.get_current_value(v)) is None else new
                   for v, value in zip(variables, values)]
                  for variables, values in zip(groups, state))
    return logs, state


def configure_devices(threads=None, compilation_cache=None):
    del threads  # XLA's CPU client sizes its own thread pool
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if compilation_cache is not None:
        # JAX's persistent cache: a worker loads what another (or an earlier job)
        # compiled. Every compilation is kept (JAX keeps only those over a second by
        # default; an explainer's are mostly shorter, and so are the eager ops' of its
        # construction): measured in docs/dataset_scale.md.
        jax.config.update("jax_compilation_cache_dir", str(compilation_cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def to_tensorflow(variables):
    import tensorflow as tf
    from jax.experimental import jax2tf

    variables = list(variables)
    held = [tf.Variable(np.asarray(v.value), trainable=False) for v in variables]

    def convert(fn, input_specs):
        def stateless(values, *args):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return fn(*args)

        shapes = [None] + [
            "(" + ", ".join("b" if n is None else str(n) for n in shape) + ")"
            if any(n is None for n in shape) else None for shape, _ in input_specs]
        converted = jax2tf.convert(stateless, polymorphic_shapes=shapes, with_gradient=False)
        # AutoGraph leaves the conversion alone (it cannot read JAX's own Python).
        return tf.autograph.experimental.do_not_convert(lambda *args: converted(held, *args))

    return convert, held
