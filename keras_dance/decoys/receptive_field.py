"""Receptive-field arithmetic for cropping the decoy constraint (pure numerics + layer table).

A patch changes only the layer-``l`` positions whose receptive field meets it (its
*footprint*), and only the input inside the footprint's receptive fields can reach them.
For a chain of local layers the constraint can therefore be evaluated on a crop of the
input. Per spatial axis and layer, with ``k`` the effective kernel, ``s`` the stride and
``b`` the padding before:

    P ← P + b·J,    R ← R + (k − 1)·J,    J ← J·s          (start: J = 1, R = 1, P = 0)

and position ``q`` of layer ``l`` sees the input interval ``[q·J − P, q·J − P + R)``.
A crop that starts at a multiple of ``J`` and whose length is congruent to the input's
length modulo ``J`` reproduces every layer's padding and grid, so the crop's outputs at
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
        "ActivityRegularization",
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


def layer_ops(layer, ndim):
    """The per-axis ops of a local layer, or ``None`` if the layer is not local.

    Local: convolutions, pooling, zero-padding, and layers acting on each position alone (activations, BatchNorm at inference, dropout at inference …).
    """
    def tup(value):
        return tuple(value) if isinstance(value, (tuple, list)) else (value,) * ndim

    if isinstance(layer, _POINTWISE):
        if isinstance(layer, (keras.layers.BatchNormalization, keras.layers.LayerNormalization)):
            axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
            if list(axis) not in ([-1], [ndim + 1]):
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

    @classmethod
    def build(cls, ops, size):
        jump, field, offset, n = 1, 1, 0, size
        for op in ops:
            offset += op.pad_before(n) * jump
            field += (op.kernel - 1) * jump
            jump *= op.stride
            n = op.output_size(n)
            if n < 1:
                raise ValueError(f"Layer chain shrinks the axis below one position ({size}).")
        return cls(tuple(ops), size, jump, field, offset, n)

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
        n = crop
        for op in self.ops:
            n = op.output_size(n)
        return n


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
