"""The CAM family: Grad-CAM, Grad-CAM++, Layer-CAM and Score-CAM.

Each reads one layer's activations ``A`` (``(B, *positions, K)``: the last convolutional
block by default), weighs its channels for the target's score, and upsamples the
class-activation map to the input's positions with bilinear interpolation whose corners
align (``scipy.ndimage.zoom(order=1)``, as tf-keras-vis does). The map is the same for
every input channel. Maps are raw: tf-keras-vis's ``normalize_cam=True`` is
``kd.postprocess``'s business here.
"""

from keras import ops

from keras_dance import _validation, _vit, backend
from keras_dance._chunking import chunked_sum
from keras_dance._tensor import as_rows, probabilities, split_budget, take
from keras_dance.methods.base import SaliencyMethod


def upsample(cam, positions):
    """``(B, *p) -> (B, *positions)``: bilinear (linear for sequences), corners aligned."""
    if tuple(cam.shape[1:]) == tuple(positions):
        return cam
    if len(positions) not in (1, 2):
        raise ValueError(f"Expected inputs with one or two position axes for the CAM family. "
                         f"Received: positions {tuple(positions)}")
    return backend.resize_aligned(cam, positions)


def _as_input_map(cam, x):
    """A ``(B, *positions)`` map at the input's positions, repeated over its channels."""
    return ops.broadcast_to(ops.expand_dims(upsample(cam, x.shape[1:-1]), -1), ops.shape(x))


def _positions(tensor):
    return list(range(1, len(tensor.shape) - 1))


class _LayerMethod(SaliencyMethod):
    """A method that reads the activations of ``layer``.

    A token layer ``(B, prefix + h·w, C)`` of a vision transformer is read on its patch
    grid: the prefix tokens (class, distillation, registers) are dropped and the rest
    reshaped to ``(B, h, w, C)`` before the CAM arithmetic (pytorch-grad-cam's
    ``reshape_transform``). keras_hub's ViT, DeiT and DINOv2/v3 backbones give their
    layout themselves (``kd._vit``); other models pass ``token_grid`` (and
    ``prefix_tokens``; default: the tokens beyond ``h·w``).
    """

    takes_layer = True

    def __init__(self, layer=None, token_grid=None, prefix_tokens=None):
        if layer is not None and not isinstance(layer, (str, int)) and not hasattr(
                layer, "name"):
            raise TypeError(
                "Expected `layer` to be None, a layer name, a nested path 'outer/inner', an "
                f"index or a keras Layer. Received: layer={layer!r}")
        self.layer = layer
        self.token_grid, self.prefix_tokens = _vit.check_grid(token_grid, prefix_tokens)

    def layer_function(self, forward):
        """``forward``'s capture of this method's layer: ``x -> (activations, logits)``.

        ``layer=None`` reads the last layer (in graph order) whose output keeps the
        input's position axes, more than one position: the last convolutional block
        before global pooling.
        """
        layer = self.layer
        if layer is None and forward.vision_layout() is not None:
            layer = forward.vision_default_layer()
        if layer is None:
            rank = None if forward.input_shape is None else len(forward.input_shape)
            found = [path for path, shape in forward.layer_outputs()
                     if len(shape) == rank and any(n is not None and n > 1
                                                   for n in shape[:-1])]
            if not found:
                raise ValueError(
                    "Expected a layer with spatial axes (e.g. a convolution) for the CAM "
                    "family's default layer. Received: a model with none; pass `layer=`")
            layer = found[-1]
        return forward.layer_forward(layer)

    def check(self, forward):
        function = self.layer_function(forward)
        if len(function.layer_shape) < 2:
            raise ValueError(
                f"Expected a layer with position axes ({type(self).__name__} weighs the "
                f"channels of a (positions, channels) activation). Received: layer "
                f"{function.layer_name!r} with output shape {function.layer_shape}")
        self._grid(forward)

    def _grid(self, forward):
        """``(B, N, C) -> (B, h, w, C)`` for a token layer on an image, or None (the
        layer's own position axes are used)."""
        function = self.layer_function(forward)
        found = _vit.token_layout(forward, function.layer_shape, function.layer_name,
                                  self.token_grid, self.prefix_tokens)
        return None if found is None else (
            lambda tokens: _vit.to_grid(tokens, found[0], found[1]))

    def _gradients(self, x, forward, targets):
        """Activations and the score's gradient there, from one forward+backward pass
        (on the patch grid for a vision transformer's token layer)."""
        function = self.layer_function(forward)

        def scored(rows, at_layer=None):
            activations, outputs = function(rows, at_layer)
            return activations, ops.sum(targets.score(outputs))

        activations, grads = backend.layer_gradient(scored, x)
        grid = self._grid(forward)
        return (activations, grads) if grid is None else (grid(activations), grid(grads))

    def get_config(self):
        layer = self.layer
        return {"layer": layer if layer is None or isinstance(layer, (str, int))
                else layer.name, "token_grid": self.token_grid,
                "prefix_tokens": self.prefix_tokens}


class GradCAM(_LayerMethod):
    """Grad-CAM (Selvaraju et al. 2017): ``ReLU(Σ_k α_k A_k)`` with ``α_k`` the
    positions' mean of ``∂S/∂A_k``, upsampled to the input.

    Equals tf-keras-vis ``Gradcam(..., normalize_cam=False)`` on the same layer (tested).

    Args:
        layer: the layer whose activations are read: a name (searched through nested
            models or inside custom layers), a path "outer/inner", an index or a layer;
            None: the last layer whose output keeps the input's position axes, or on a
            keras_hub vision transformer the last block's pre-attention norm.
            Defaults to None.
        token_grid: ``(h, w)`` patch tokens of a token layer ``(B, N, C)`` on an image;
            None: read from a keras_hub ViT/DeiT/DINOv2 backbone. Defaults to None.
        prefix_tokens: tokens before the patch tokens (class, distillation, registers);
            None: the backbone's, else ``N - h·w``. Defaults to None.

    Example:
        >>> method = kd.methods.GradCAM(layer="conv3")
        >>> vit = kd.methods.GradCAM(layer="blocks/ln_1", token_grid=(14, 14), prefix_tokens=1)
    """

    name = "gradcam"

    def __call__(self, x, forward, targets, budget=None):
        del budget
        activations, grads = self._gradients(x, forward, targets)
        weights = ops.mean(grads, axis=_positions(grads), keepdims=True)
        cam = ops.relu(ops.sum(activations * weights, axis=-1))
        return _as_input_map(cam, x)


class GradCAMPlusPlus(_LayerMethod):
    """Grad-CAM++ (Chattopadhay et al. 2018): channel weights ``Σ_p α_p ReLU(∂S/∂A_p)``
    with ``α = g² / (2g² + g³ Σ_p A)`` (``g = ∂S/∂A``, the exponential-score closed form).

    tf-keras-vis multiplies the gradients by ``exp(S)``; here that positive per-input
    factor is left out (it overflows float32 for logits above 88 and cancels in any
    normalised map): our maps equal tf-keras-vis ``GradcamPlusPlus`` after per-map
    normalisation, and its raw maps divided by ``exp(S)`` (tested).

    Args:
        layer, token_grid, prefix_tokens: as ``GradCAM``.
    """

    name = "gradcam_plus_plus"

    def __call__(self, x, forward, targets, budget=None):
        del budget
        activations, grads = self._gradients(x, forward, targets)
        axes = _positions(grads)
        second = ops.square(grads)
        third = second * grads
        total = ops.sum(activations, axis=axes, keepdims=True)
        denominator = 2.0 * second + third * total
        denominator += ops.cast(ops.equal(second, 0.0), denominator.dtype)
        alphas = second / denominator
        norm = ops.sum(alphas, axis=axes, keepdims=True)
        alphas /= norm + ops.cast(ops.equal(norm, 0.0), norm.dtype)
        weights = ops.sum(ops.relu(grads) * alphas, axis=axes, keepdims=True)
        cam = ops.relu(ops.sum(weights * activations, axis=-1))
        return _as_input_map(cam, x)


class LayerCAM(_LayerMethod):
    """Layer-CAM (Jiang et al. 2021): ``ReLU(Σ_k ReLU(∂S/∂A_k) ⊙ A_k)``, position by
    position, upsampled to the input: it keeps fine detail at earlier layers.

    Equals tf-keras-vis ``Layercam(..., normalize_cam=False)`` (tested).

    Args:
        layer, token_grid, prefix_tokens: as ``GradCAM``.
    """

    name = "layercam"

    def __call__(self, x, forward, targets, budget=None):
        del budget
        activations, grads = self._gradients(x, forward, targets)
        cam = ops.relu(ops.sum(activations * ops.relu(grads), axis=-1))
        return _as_input_map(cam, x)


class ScoreCAM(_LayerMethod):
    """Score-CAM (Wang et al. 2020): each channel's activation map, upsampled and scaled
    to [0, 1], masks the input; the channel's weight is the target's probability (softmax
    of the logits; sigmoid for one logit) on the masked input. ``ReLU(Σ_k w_k A_k)``,
    upsampled. No gradient: it needs only forward passes.

    ``max_channels`` is the faster variant's cap (tf-keras-vis ``max_N``): only the
    channels whose activation maps vary most (standard deviation over positions) are
    used, chosen per input (tf-keras-vis chooses over the batch, so its maps depend on
    the batch). The masked forward passes run in chunks under the memory knob.

    Equals tf-keras-vis ``Scorecam(..., normalize_cam=False)`` (tested).

    Args:
        layer, token_grid, prefix_tokens: as ``GradCAM``.
        max_channels: at most this many channels; None: all. Defaults to None.
    """

    name = "scorecam"
    needs_gradients = False

    def __init__(self, layer=None, max_channels=None, token_grid=None, prefix_tokens=None):
        super().__init__(layer, token_grid, prefix_tokens)
        if max_channels is not None:
            max_channels = _validation.check_positive_int(max_channels, "max_channels")
        self.max_channels = max_channels

    def _channels(self, forward):
        channels = self.layer_function(forward).layer_shape[-1]
        return channels if self.max_channels is None else min(channels, self.max_channels)

    def rows_per_input(self, num_classes):
        del num_classes
        return 1 + (self.max_channels or 64)  # one pass for the activations, one per mask

    def __call__(self, x, forward, targets, budget=None):
        function = self.layer_function(forward)
        activations, _ = function(x)
        grid = self._grid(forward)
        activations = ops.stop_gradient(activations if grid is None else grid(activations))
        count = self._channels(forward)
        axes = _positions(activations)
        if count < activations.shape[-1]:  # the cap: per input, most varied first
            spread = ops.std(activations, axis=axes)  # (B, K)
            _, chosen = ops.top_k(spread, k=count)  # (B, N)
            index = ops.reshape(chosen, (-1,) + (1,) * len(axes) + (count,))
            index = ops.broadcast_to(index, tuple(ops.shape(activations)[:-1]) + (count,))
            activations = ops.take_along_axis(activations, index, axis=-1)
        # (B, *p, N) -> (B, N, *positions): one mask per channel, in [0, 1].
        moved = ops.transpose(activations, [0, len(axes) + 1] + axes)
        flat = ops.reshape(moved, (-1,) + tuple(ops.shape(moved)[2:]))
        masks = ops.reshape(upsample(flat, x.shape[1:-1]),
                            tuple(ops.shape(moved)[:2]) + tuple(ops.shape(x)[1:-1]))
        low = ops.min(masks, axis=tuple(range(2, len(masks.shape))), keepdims=True)
        high = ops.max(masks, axis=tuple(range(2, len(masks.shape))), keepdims=True)
        masks = (masks - low) / (high - low + 1e-7)  # Keras's epsilon, as tf-keras-vis
        num_classes = getattr(forward, "num_classes", None)

        def chunk(start, size):
            # (size, B, *x features): channel-major rows, as targets.tile expects.
            picked = take(ops.moveaxis(masks, 1, 0), start, size)  # (size, B, *positions)
            rows = as_rows(ops.expand_dims(x, 0) * ops.expand_dims(picked, -1), x)
            outputs = forward(rows)
            scores = ops.reshape(targets.tile(size).score(probabilities(outputs, num_classes)),
                                 (size, -1))
            one_hot = ops.one_hot(start + ops.arange(size, dtype="int32"), count)  # (size, N)
            return ops.einsum("sb,sn->bn", scores, one_hot)

        weights = chunked_sum(chunk, count, split_budget(budget, 1) or count,
                              ops.zeros((ops.shape(x)[0], count)))
        shape = (-1,) + (1,) * len(axes) + (count,)
        cam = ops.relu(ops.sum(activations * ops.reshape(weights, shape), axis=-1))
        return _as_input_map(cam, x)

    def get_config(self):
        return dict(super().get_config(), max_channels=self.max_channels)
