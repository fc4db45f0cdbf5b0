"""The seam on TensorFlow: ``tf.GradientTape``, ``tf.function``, ``tf.while_loop``,
``tf.custom_gradient`` and TensorFlow's integer ops. The interface is documented in
``keras_dance.backend``."""

import os

import tensorflow as tf

from keras_dance.backend._common import chunk_loop, interpolation

def to_tensor(value, dtype=None):
    return tf.constant(value, dtype=dtype)


def to_numpy(value):
    return value.numpy()


def gradient(fn, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(fn(x))
    return tape.gradient(total, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)


def layer_gradient(fn, x):
    captured = []

    def watch(value):  # the layer's own output, in the model's dtype, before any cast
        tape.watch(value)
        captured.append(value)
        return value

    with tf.GradientTape() as tape:
        activations, total = fn(x, watch)
    grads = tape.gradient(total, captured, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    if isinstance(activations, (list, tuple)):  # several captures, in the model's order
        return activations, [tf.cast(g, a.dtype) for g, a in zip(grads, activations)]
    return activations, tf.cast(grads[0], activations.dtype)


def vjp(fn, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = fn(x)
    return value, lambda cotangent: tape.gradient(value, x, output_gradients=cotangent)


def gather_nd(values, index):
    return tf.gather_nd(values, index)


def scatter_nd_update(values, index, updates):
    return tf.tensor_scatter_nd_update(values, index, updates)


def batched_take(values, indices, axis):
    return tf.gather(values, indices, axis=axis, batch_dims=1)


def is_connected(fn, x):
    # Traced, never run: whether a gradient path exists is a property of the graph, so
    # the gradient is built symbolically in a tf.function and only its None-ness read.
    # No kernel runs. (An eager tape would also run the weights' gradients nobody asked
    # for, and oneDNN's filter gradient of a 1x1 stride-2 convolution at some shapes
    # aborts the process: tensorflow/tensorflow, TF 2.21, seen on a 60x60x8 input.)
    x = tf.nest.map_structure(tf.convert_to_tensor, x)
    found = []

    def probe(values):
        with tf.GradientTape() as tape:
            tape.watch(values)
            outputs = tf.nest.flatten(fn(values))
            total = tf.add_n([tf.reduce_sum(tf.cast(o, tf.float32)) for o in outputs])
        found.append(any(g is not None for g in tf.nest.flatten(
            tape.gradient(total, values))))
        return total

    specs = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), x)
    tf.function(probe, autograph=False).get_concrete_function(specs)
    return found[-1]


def fori_loop(count, body, init):
    # parallel_iterations=1: the chunks are independent of each other, so TensorFlow
    # would otherwise run up to ten of them at once and multiply the memory bound.
    _, state = tf.while_loop(
        lambda i, state: i < count, lambda i, state: (i + 1, body(i, state)),
        (tf.constant(0, tf.int32), init), parallel_iterations=1)
    return state


def while_loop(cond, body, state):
    return tf.while_loop(cond, body, state)


@tf.custom_gradient
def positive_gradient(x):
    return tf.identity(x), lambda upstream: tf.nn.relu(upstream)


def resize_aligned(values, size):
    out = values
    for axis, (size_in, size_out) in enumerate(zip(values.shape[1:], size), start=1):
        if size_in == size_out:
            continue
        weights = tf.constant(interpolation(int(size_in), int(size_out)), out.dtype)
        moved = tf.tensordot(out, weights, axes=[[axis], [1]])  # the axis lands last
        order = list(range(len(out.shape) - 1))
        out = tf.transpose(moved, order[:axis] + [len(out.shape) - 1] + order[axis:])
    return out


def sqrt(values):
    return tf.sqrt(values)


def hash32(h):
    h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, tf.constant(16, tf.uint32)))
    h = h * tf.constant(0x85EBCA6B, tf.uint32)
    h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, tf.constant(13, tf.uint32)))
    h = h * tf.constant(0xC2B2AE35, tf.uint32)
    return tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, tf.constant(16, tf.uint32)))


def compile(fn, jit_compile=False, input_specs=None, variables=()):  # noqa: A001
    del variables  # a tf.function reads variables by reference: always the current weights
    signature = None if input_specs is None else [
        tf.TensorSpec(shape, dtype) for shape, dtype in input_specs]
    return tf.function(fn, jit_compile=jit_compile, input_signature=signature,
                       reduce_retracing=signature is None)


def map_chunks(fn, inputs, per_pass, output_specs):
    count = tf.shape(inputs[0])[0]
    chunks = (count + per_pass - 1) // per_pass
    arrays = [tf.TensorArray(dtype, size=chunks, infer_shape=False,
                             element_shape=tf.TensorShape((None,) + tuple(shape)))
              for shape, dtype in output_specs]

    def body(i, arrays):
        start = i * per_pass
        stop = tf.minimum(start + per_pass, count)
        results = fn(*[tensor[start:stop] for tensor in inputs])
        return i + 1, [array.write(i, value) for array, value in zip(arrays, results)]

    # One chunk at a time (parallel_iterations=1): the memory knob bounds the whole call.
    _, arrays = tf.while_loop(lambda i, arrays: i < chunks, body,
                              (tf.constant(0, tf.int32), arrays), parallel_iterations=1)
    return tuple(array.concat() for array in arrays)


def compile_chunks(fn, per_pass, input_specs, output_specs, jit_compile=False, variables=()):
    return chunk_loop(compile, map_chunks, fn, per_pass, input_specs, output_specs,
                      jit_compile, variables)


def minimise(model, objective):
    with tf.GradientTape() as tape:
        value, aux = objective()
    gradients = tape.gradient(value, model.trainable_variables)
    model.optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    return aux


def train_step(model, args, step):
    (data,) = args
    return step(data)


def configure_devices(threads=None, compilation_cache=None):
    del compilation_cache  # tf.function traces per process; no persistent cache to share
    gpus = tf.config.list_physical_devices("GPU")
    try:
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
        if len(gpus) > 1 and "CUDA_VISIBLE_DEVICES" not in os.environ:
            tf.config.set_visible_devices(gpus[os.getpid() % len(gpus)], "GPU")
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
    except RuntimeError:
        pass  # TensorFlow already initialised in this process


def to_tensorflow(variables):
    def convert(fn, input_specs):
        del input_specs  # the caller's tf.function signature fixes them
        return fn

    return convert, [getattr(v, "value", v) for v in variables]
