"""The backend seam: everything a framework does differently, behind one interface.

keras-dance computes with ``keras.ops`` and ``keras.tree`` everywhere else; what
``keras.ops`` does not offer the same way on TensorFlow, JAX and PyTorch lives here, one
module per backend (``tensorflow.py``, ``jax.py`` and ``torch.py`` implement the same
names). The active module follows ``keras.config.backend()``, fixed when Keras is
imported.

The interface (every backend module defines each name):

``to_tensor(value, dtype=None)``, ``to_numpy(value)``
    numpy in and out of the backend on the explainer's hot path (``keras.ops``' general
    conversions cost a tenth of a millisecond more per call, which small batches feel).
``gradient(fn, x)``
    ``d Σ fn(x) / d x``: the gradient of the summed scores with respect to ``x``, one
    backward pass for a batch of independent rows; zeros where ``fn`` does not depend on
    ``x`` (TensorFlow's ``None`` gradient made explicit).
``layer_gradient(fn, x)``
    ``fn(x, at_layer) -> (activations, total)``, where ``at_layer`` (None, or a function
    ``output -> output``) is applied to the layer's own output, in the model's dtype,
    before the rest of the model uses it: returns ``(activations, d total /
    d activations)`` in the activations' dtype (the CAM family's gradient at a layer,
    mixed-precision and float64 models included; TensorFlow watches the output there,
    JAX differentiates a zero added there). ``activations`` may be a list of several
    layers' outputs (attention probabilities of every layer): ``at_layer`` is then
    applied to each, in the order the model computes them, and the gradients come back
    as a list.
``vjp(fn, x)``
    ``(fn(x), pullback)`` with ``pullback(cotangent) = cotangentᵀ · ∂fn/∂x``: a
    vector-Jacobian product whose cotangent may depend on the value (the decoy solver's
    step through ``F_l``: the penalty's gradient is written from ``F_l(x)``).
``gather_nd(values, index)``
    ``values[index[..., 0], index[..., 1], …]``: the entries a ``(…, rank)`` index
    addresses; ``scatter_nd_update(values, index, updates)`` writes them (a copy).
``batched_take(values, indices, axis)``
    for every row ``b``: ``values[b]`` taken at ``indices[b]`` along ``axis`` (≥ 1), e.g.
    each RISE mask's own crop window (``indices`` ``(B, n)``).
``is_connected(fn, x)``
    whether ``Σ fn(x)`` has a gradient path to ``x`` (a tensor or a nest of them: to any
    of its leaves) at all: the explainer's probe refuses models whose maps would be zero
    (JAX returns zeros, TensorFlow ``None``).
``fori_loop(count, body, init)``
    ``body(i, state) -> state`` for ``i`` in ``0 … count − 1`` (``count`` a Python int),
    compiled as one loop, iterations strictly one after another: the memory knob's
    chunks never run side by side.
``while_loop(cond, body, state)``
    ``state = body(state)`` while ``cond(state)``, compiled as one loop.
``positive_gradient(x)``
    the identity whose backward pass keeps only positive gradients (Guided Backprop).
``resize_aligned(values, size)``
    ``(B, *p) -> (B, *size)`` linear interpolation along each position axis with the
    corners aligned (``scipy.ndimage.zoom(order=1)``), printing nothing.
``sqrt(values)``
    the correctly rounded square root of float32 ``values`` (IEEE's ``√``; PyTorch's
    float32 CPU kernel is not: 13% of one Gaussian draw's square roots were an ulp off).
``hash32(values)``
    murmur3's 32-bit finaliser on uint32 tensors (products wrap modulo 2^32): the
    counter-based random streams, bit-identical on every backend.
``compile(fn, jit_compile=False, input_specs=None, variables=())``
    ``fn`` compiled once; ``input_specs``: ``[(shape, dtype)]`` with ``None`` axes makes it
    batch-polymorphic (traced once for every batch size; JAX caches one per shape);
    ``variables``: the Keras variables ``fn`` reads, passed as arguments where the
    framework would otherwise bake their values in (JAX), so that the function follows
    weights that change (a model still training).
``minimise(model, objective)``
    one optimiser step inside a custom training step: ``objective() -> (value, aux)``
    (it calls the model) differentiated with respect to ``model.trainable_variables``
    and applied by ``model.optimizer``; returns ``aux`` (what the step reports: the
    predictions, the loss terms), never a value traced inside the differentiation.
``to_tensorflow(variables)``
    ``(convert, tf_variables)`` for a SavedModel: ``convert(fn, input_specs)`` makes
    ``fn`` (reading the Keras ``variables``) a function of TensorFlow tensors of
    ``input_specs`` (``[(shape, dtype)]``, ``None`` for a polymorphic axis), and
    ``tf_variables`` hold the weights it reads (saved with it). TensorFlow: ``fn``
    itself, the Keras variables being TensorFlow's; JAX: ``jax2tf`` (StableHLO run by an
    ``XlaCallModule`` op), the weights copied once into ``tf.Variable``s that every
    converted function shares. Imports TensorFlow.
``train_step(model, args, step)``
    ``model.train_step``'s body on this backend: ``step(data) -> logs`` runs statefully
    (variables read and assigned as usual). TensorFlow calls it as it is; JAX's trainer
    calls ``train_step(state, data)`` and wants ``(logs, state)`` back, so the step runs
    inside a ``keras.StatelessScope`` over the model's, optimiser's and metrics'
    variables and the new state is read back from the scope.
``configure_devices(threads=None, compilation_cache=None)``
    per-process set-up of a dataset worker: accelerator memory on demand, one accelerator
    per process when several are visible and the engine chose none, ``threads`` threads;
    ``compilation_cache``: a directory for JAX's persistent compilation cache (workers
    load what another compiled; TensorFlow and PyTorch ignore it).
``compile_chunks(fn, per_pass, input_specs, output_specs, jit_compile=False, variables=())``
    ``fn`` (one chunk of at most ``per_pass`` rows) compiled as a function of whole
    batches of any size (``input_specs`` with a ``None`` batch axis), run chunk by chunk
    under the memory knob. TensorFlow: one batch-polymorphic graph with the loop inside
    (``map_chunks``), traced once; PyTorch: eager; JAX: the chunk compiled alone, the
    last chunk padded to a power of two, so that any sequence of batch sizes compiles at
    most ⌈log₂ per_pass⌉ + 1 times (padding rows never reach the result).
``map_chunks(fn, inputs, per_pass, output_specs)``
    ``fn`` on consecutive slices of ``per_pass`` rows of ``inputs`` (a list of tensors with
    a common first axis of any length), one slice after another inside the compiled
    function; the outputs (``[(shape without the batch axis, dtype)]``) concatenated.

Raises:
    RuntimeError: at first use, naming the backend, when the active Keras backend has no
        module here yet.
"""

import importlib

import keras

#: Keras backend name -> the module implementing the interface above.
MODULES = {"tensorflow": "keras_dance.backend.tensorflow", "jax": "keras_dance.backend.jax",
           "torch": "keras_dance.backend.torch"}

INTERFACE = ("to_tensor", "to_numpy", "gradient", "layer_gradient", "vjp", "gather_nd",
             "scatter_nd_update",
             "batched_take", "is_connected", "fori_loop", "while_loop", "positive_gradient",
             "resize_aligned", "sqrt", "hash32", "compile", "compile_chunks", "map_chunks", "minimise", "train_step",
             "to_tensorflow",
             "configure_devices")


def name():
    """The active Keras backend: "tensorflow", "jax" or "torch"."""
    return keras.backend.backend()


def module():
    """The seam's module for the active backend.

    Raises:
        RuntimeError: no module for this backend yet.
    """
    backend = name()
    if backend not in MODULES:
        raise RuntimeError(
            f"Expected the Keras backend 'tensorflow', 'jax' or 'torch' (set KERAS_BACKEND). "
            f"Received: backend={backend!r}")
    return importlib.import_module(MODULES[backend])


def __getattr__(attribute):
    if attribute in INTERFACE:
        return getattr(module(), attribute)
    raise AttributeError(f"module 'keras_dance.backend' has no attribute {attribute!r}")
