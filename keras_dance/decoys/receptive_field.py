"""Receptive-field arithmetic for cropping the decoy constraint (pure numerics + layer table).

A patch changes only the layer-``l`` positions whose receptive field meets it (its
*footprint*), and only the input inside the footprint's receptive fields can reach them.
For a graph of local layers the constraint can therefore be evaluated on a crop of the
input. Per spatial axis and layer, with ``k`` the effective kernel, ``s`` the stride and
``b`` the padding before:

    P ← P + b·J,    R ← R + (k − 1)·J,    J ← J·s          (start: J = 1, R = 1, P = 0)

and position ``q`` of layer ``l`` sees the input interval ``[q·J − P, q·J − P + R)``.
Where branches merge (residual ``Add``, channel ``Concatenate`` …) they must share ``J``
and length; the merged field is the union, ``P = max P_i`` and ``R − P = max(R_i − P_i)``.
Every tensor before layer ``l`` has a jump dividing ``J``, so a crop that starts at a
multiple of ``J`` and whose length is congruent to the input's length modulo ``J``
reproduces every layer's padding and grid, so the crop's outputs at
the footprint equal the full model's; the engine still verifies this on a probe.
"""

import dataclasses
import math

import keras
import numpy as np

_POINTWISE = tuple(
    getattr(keras.layers, name) for name in (
        "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Dropout", "GaussianNoise",
        "GaussianDropout", "AlphaDropout", "SpatialDropout1D", "SpatialDropout2D",
        "Rescaling", "Identity", "InputLayer", "BatchNormalization", "LayerNormalization",
        "ActivityRegularization", "Normalization", "Softmax",
    ) if hasattr(keras.layers, name)
)
#: Layers that combine several tensors position by position.
MERGES = tuple(
    getattr(keras.layers, name) for name in (
        "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
    ) if hasattr(keras.layers, name)
)
_CONV = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
         keras.layers.SeparableConv2D, keras.layers.SeparableConv1D)
_POOL = (keras.layers.MaxPooling1D, keras.layers.MaxPooling2D,
         keras.layers.AveragePooling1D, keras.layers.AveragePooling2D)


@dataclasses.dataclass(frozen=True)
class AxisOp:
    """One layer along one spatial axis: kernel, stride and padding rule."""

    kernel: int = 1
    stride: int = 1
    padding: str = "valid"  # "valid" | "same" | "causal" | "pad"
    before: int = 0  # explicit zero padding before ("pad")
    after: int = 0

    def pad_before(self, size):
        if self.padding == "same":
            out = -(-size // self.stride)
            return max((out - 1) * self.stride + self.kernel - size, 0) // 2
        if self.padding == "causal":
            return self.kernel - 1
        if self.padding == "pad":
            return self.before
        return 0

    def output_size(self, size):
        if self.padding == "same":
            return -(-size // self.stride)
        if self.padding == "causal":
            return (size - 1) // self.stride + 1
        if self.padding == "pad":
            return size + self.before + self.after
        return (size - self.kernel) // self.stride + 1


def _channel_axis_only(layer, ndim):
    """Whether a normalising/softmax layer works along the channel axis only."""
    if not isinstance(layer, (keras.layers.BatchNormalization, keras.layers.LayerNormalization,
                              keras.layers.Normalization, keras.layers.Softmax)):
        return True
    axis = layer.axis
    if axis is None:
        # Normalization(axis=None): one scalar mean and variance, the same everywhere.
        return isinstance(layer, keras.layers.Normalization)
    axis = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    return axis in ([-1], [ndim + 1])


def layer_ops(layer, ndim):
    """The per-axis ops of a local one-input layer, or ``None`` if it is not local.

    Local: convolutions (also depthwise and separable), pooling, zero-padding, and layers
    acting on each position alone (activations, BatchNorm at inference, ``Normalization``
    and ``Rescaling``, dropout at inference …). Merges of several tensors: ``merge_ok``.
    """
    def tup(value):
        return tuple(value) if isinstance(value, (tuple, list)) else (value,) * ndim

    if isinstance(layer, _POINTWISE):
        if not _channel_axis_only(layer, ndim):
            return None
        return [AxisOp()] * ndim
    if isinstance(layer, _CONV):
        if len(tup(layer.kernel_size)) != ndim:
            return None
        dilation = tup(getattr(layer, "dilation_rate", 1))
        return [AxisOp((k - 1) * d + 1, s, layer.padding)
                for k, s, d in zip(tup(layer.kernel_size), tup(layer.strides), dilation)]
    if isinstance(layer, _POOL):
        if len(tup(layer.pool_size)) != ndim:
            return None
        return [AxisOp(k, s, layer.padding) for k, s in zip(tup(layer.pool_size), tup(layer.strides))]
    # Cropping layers are not local for our purpose: inside a crop they would remove
    # positions that hold real data, which the receptive-field margin does not cover.
    padding_layers = tuple(getattr(keras.layers, n) for n in ("ZeroPadding1D", "ZeroPadding2D"))
    if isinstance(layer, padding_layers):
        amounts = [layer.padding] if ndim == 1 else list(layer.padding)
        return [AxisOp(padding="pad", before=a, after=b) for a, b in amounts]
    return None


@dataclasses.dataclass(frozen=True)
class AxisGeometry:
    """Receptive-field geometry of layer ``l`` along one axis of an input of ``size``."""

    ops: tuple
    size: int
    jump: int
    field: int
    offset: int
    output_size: int
    sizer: object = dataclasses.field(default=None, compare=False, repr=False)

    @classmethod
    def build(cls, ops, size):
        """The geometry of a chain of ``AxisOp`` (``_Field.then`` applied in turn)."""
        field = _Field(1, 1, 0, size)
        for op in ops:
            field = field.then(op)
            if field.size < 1:
                raise ValueError(f"Layer chain shrinks the axis below one position ({size}).")
        return cls(tuple(ops), size, field.jump, field.field, field.offset, field.size)

    def footprint(self, start, length):
        """Layer-``l`` positions ``[lo, hi]`` whose receptive field meets the patch."""
        lo = math.ceil((start - self.field + 1 + self.offset) / self.jump)
        hi = math.floor((start + length - 1 + self.offset) / self.jump)
        return max(lo, 0), min(hi, self.output_size - 1)

    def needed(self, start, length):
        """The input interval that reaches the footprint, clipped to the input."""
        lo, hi = self.footprint(start, length)
        return max(lo * self.jump - self.offset, 0), min(hi * self.jump - self.offset + self.field, self.size)

    def crop_output_size(self, crop):
        """Layer-``l`` length for an input of length ``crop`` (None: branches disagree)."""
        if self.sizer is not None:
            return self.sizer(crop)
        n = crop
        for op in self.ops:
            n = op.output_size(n)
        return n


@dataclasses.dataclass(frozen=True)
class _Field:
    """One tensor's receptive field along one axis: position ``q`` sees the input
    interval ``[q·jump − offset, q·jump − offset + field)``; ``size`` positions."""

    jump: int
    field: int
    offset: int
    size: int

    def then(self, op):
        return _Field(self.jump * op.stride, self.field + (op.kernel - 1) * self.jump,
                      self.offset + op.pad_before(self.size) * self.jump, op.output_size(self.size))


def _merge(fields):
    """The union of the inputs' fields, or None when their grids differ."""
    if len({f.jump for f in fields}) != 1 or len({f.size for f in fields}) != 1:
        return None
    offset = max(f.offset for f in fields)
    end = max(f.field - f.offset for f in fields)
    return _Field(fields[0].jump, offset + end, offset, fields[0].size)


def merge_ok(layer, ndim):
    """Whether ``layer`` combines its inputs position by position (channels may concatenate)."""
    if not isinstance(layer, MERGES):
        return False
    if isinstance(layer, keras.layers.Concatenate):
        return layer.axis in (-1, ndim + 1)
    return True


def _propagate(steps, input_key, output_key, sizes):
    """Every tensor's per-axis ``_Field`` through a flattened graph (``kd._graph``).

    Returns ``(fields of the output tensor, None)`` or ``(None, reason)``.
    """
    ndim = len(sizes)
    fields = {input_key: [_Field(1, 1, 0, n) for n in sizes]}
    for step in steps:
        sources = [fields.get(key) for key in step.inputs]
        if step.operation is None:
            for key, source in zip(step.outputs, sources):
                fields[key] = source
            continue
        layer = step.operation
        where = f"layer {layer.name!r} ({type(layer).__name__})"
        if len(step.outputs) != 1 or not sources:
            return None, f"{where} is not local"
        if len(sources) == 1 and not isinstance(layer, MERGES):
            ops = layer_ops(layer, ndim) if isinstance(layer, keras.layers.Layer) else None
            if ops is None:
                return None, f"{where} is not local"
            result = [field.then(op) for field, op in zip(sources[0], ops)]
            if any(f.size < 1 for f in result):
                return None, f"{where} shrinks an axis below one position"
        else:
            if not merge_ok(layer, ndim):
                return None, f"{where} is not local"
            result = [_merge([source[a] for source in sources]) for a in range(ndim)]
            if any(f is None for f in result):
                return None, f"{where} merges tensors on different grids"
        fields[step.outputs[0]] = result
    return fields[output_key], None


def graph_geometry(function, spatial_shape):
    """Per-axis ``AxisGeometry`` of ``function`` (a ``kd._graph.GraphFunction``).

    Returns ``(geometries, None)`` for a graph of local layers (chains, residual
    additions, channel concatenations …), else ``(None, reason)`` naming the layer.
    """
    steps, key_in, key_out = function.steps, function.input_key, function.output_key
    fields, reason = _propagate(steps, key_in, key_out, tuple(spatial_shape))
    if fields is None:
        return None, reason
    geometries = []
    for a, (field, size) in enumerate(zip(fields, spatial_shape)):
        def sizer(n, a=a):
            sizes = list(spatial_shape)
            sizes[a] = n
            result, _ = _propagate(steps, key_in, key_out, tuple(sizes))
            return None if result is None else result[a].size

        geometries.append(AxisGeometry((), size, field.jump, field.field, field.offset,
                                       field.size, sizer))
    return geometries, None


@dataclasses.dataclass(frozen=True)
class CropPlan:
    """Fixed-size crops, one per patch, and each patch's footprint inside its crop.

    Attributes:
        crop_shape: crop length per spatial axis.
        offsets: ``(n, ndim)`` crop start per patch, multiples of the axis jump.
        output_shape: layer-``l`` spatial shape of a crop.
        footprints: ``(n, *output_shape)`` bool: positions to compare, per patch.
        patch_offsets: ``(n, ndim)`` patch start inside its crop.
    """

    crop_shape: tuple
    offsets: np.ndarray
    output_shape: tuple
    footprints: np.ndarray
    patch_offsets: np.ndarray
    jumps: tuple = ()
    full_shape: tuple = ()

    @property
    def output_offsets(self):
        """``(n, ndim)``: where each crop's layer-``l`` output starts in the full one."""
        return self.offsets // np.asarray(self.jumps)

    @property
    def fraction(self):
        """Crop area over input area (the work per evaluation, relative to full)."""
        return float(np.prod(self.crop_shape)) / float(np.prod(self.full_shape))


def plan_crops(geometries, starts, patch):
    """Chooses one crop length per axis and a crop per patch (see the module docstring).

    Returns ``None`` when cropping would not save work on any axis.
    """
    ndim = len(geometries)
    lengths, offsets = [], np.zeros((len(starts), ndim), np.int64)
    for a, geometry in enumerate(geometries):
        jump, size = geometry.jump, geometry.size
        need = 0
        for corner in starts:
            lo, hi = geometry.needed(int(corner[a]), patch[a])
            need = max(need, hi - (lo // jump) * jump)
        length = need + (size - need) % jump  # ≡ size (mod jump), ≥ need
        if length >= size:
            length = size
        lengths.append(length)
        for i, corner in enumerate(starts):
            lo, _ = geometry.needed(int(corner[a]), patch[a])
            offsets[i, a] = min((lo // jump) * jump, size - length)
    if all(length == geometry.size for length, geometry in zip(lengths, geometries)):
        return None
    output_shape = tuple(g.crop_output_size(n) for g, n in zip(geometries, lengths))
    if any(n is None or n < 1 for n in output_shape):
        return None
    for a, geometry in enumerate(geometries):
        # A crop's output must be a window of the full output (the solver takes its
        # reference F_l(x) from there).
        if offsets[:, a].max() // geometry.jump + output_shape[a] > geometry.output_size:
            return None
    footprints = np.zeros((len(starts),) + output_shape, bool)
    for i, corner in enumerate(starts):
        index = [i]
        for a, geometry in enumerate(geometries):
            lo, hi = geometry.footprint(int(corner[a]), patch[a])
            shift = offsets[i, a] // geometry.jump
            if lo - shift < 0 or hi - shift >= output_shape[a]:
                return None  # the crop cannot hold the footprint: fall back to full
            index.append(slice(lo - shift, hi - shift + 1))
        footprints[tuple(index)] = True
    return CropPlan(tuple(lengths), offsets, output_shape, footprints,
                    np.asarray(starts, np.int64) - offsets,
                    jumps=tuple(g.jump for g in geometries),
                    full_shape=tuple(g.size for g in geometries))
