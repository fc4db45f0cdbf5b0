"""Vision transformers: where the patch tokens are, and how they lie on the image.

A vision transformer's layers output tokens ``(B, prefix + h·w, C)``: ``prefix`` tokens
that belong to no patch (the class token; DeiT's distillation token; DINOv2's registers),
then one token per patch in row-major order. The CAM family, attention methods and the
decoys' patch read that layout here:

- ``layout(model)`` recognises keras_hub's ``ViTBackbone``, ``DeiTBackbone``,
  ``DINOV2Backbone`` and ``DINOV3Backbone`` inside a model by class name (keras_hub need
  not be imported) and reads the layout from their configuration: patch size, image
  shape and token flags. Other models give their layout explicitly
  (``token_grid=(h, w)``, ``prefix_tokens=``).
- ``to_grid(tokens, prefix, grid)`` drops the prefix and reshapes the rest to
  ``(B, h, w, C)`` (pytorch-grad-cam's ``reshape_transform``).
"""

import dataclasses

import keras

from keras_dance import _graph

#: keras_hub backbone class -> its prefix tokens from its configuration.
_PREFIX = {
    "ViTBackbone": lambda b: 1 if getattr(b, "use_class_token", True) else 0,
    "DeiTBackbone": lambda b: 2,  # class and distillation tokens
    "DINOV2Backbone": lambda b: 1 + int(getattr(b, "num_register_tokens", 0)),
    "DINOV3Backbone": lambda b: 1 + int(getattr(b, "num_register_tokens", 0)),
}


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a vision transformer's tokens lie on its image.

    Attributes:
        prefix: tokens before the patch tokens (class, distillation, registers).
        grid: ``(h, w)`` patches.
        patch_size: ``(ph, pw)`` pixels of one patch in the model's image.
        image_shape: ``(H, W)`` of the image the backbone takes.
        backbone: the backbone's path in the model ("a/b"), or None (given explicitly).
        family: the backbone's class name, or None.
    """

    prefix: int
    grid: tuple
    patch_size: tuple = None
    image_shape: tuple = None
    backbone: str = None
    family: str = None

    @property
    def tokens(self):
        return self.prefix + self.grid[0] * self.grid[1]


def _pair(value):
    return (int(value), int(value)) if isinstance(value, int) else tuple(int(v) for v in value)


def layout(model):
    """The ``Layout`` of the one keras_hub vision-transformer backbone in ``model``
    (the model itself or a nested layer), or None.

    Raises:
        ValueError: more than one such backbone (pass ``token_grid=`` explicitly), or one
            whose image shape is not fully known or not channels-last.
    """
    found = [(path, layer) for path, layer in [((), model)] + _graph.layer_paths(model)
             if type(layer).__name__ in _PREFIX]
    if not found:
        return None
    if len(found) > 1:
        raise ValueError(
            "Expected one vision-transformer backbone to read the token layout from. "
            "Received: " + ", ".join(f"{type(b).__name__} at {'/'.join(p) or 'the model'!r}"
                                     for p, b in found)
            + "; pass `token_grid=(h, w)` and `prefix_tokens=`")
    path, backbone = found[0]
    family = type(backbone).__name__
    image = tuple(backbone.image_shape)
    if getattr(backbone, "data_format", "channels_last") == "channels_first":
        raise ValueError(
            f"Expected a channels-last {family} (the library's images are (H, W, C)). "
            f"Received: data_format='channels_first'")
    if len(image) != 3 or image[0] is None or image[1] is None:
        raise ValueError(
            f"Expected the {family}'s image shape to be fully known to place its tokens "
            f"on a grid. Received: image_shape={image}; pass `token_grid=(h, w)`")
    patch = _pair(backbone.patch_size)
    grid = (image[0] // patch[0], image[1] // patch[1])
    return Layout(prefix=_PREFIX[family](backbone), grid=grid, patch_size=patch,
                  image_shape=(int(image[0]), int(image[1])),
                  backbone="/".join(layer.name for layer in _graph.resolve(model, "/".join(path)))
                  if path else None, family=family)


def default_layer(model, found):
    """The last transformer block's pre-attention norm (pytorch-grad-cam's
    ``blocks[-1].norm1``): the first ``LayerNormalization`` directly inside the block
    that holds the model's last ``MultiHeadAttention``. Its patch tokens carry gradient;
    the encoder's output does not when the class token is pooled after a per-token
    norm."""
    paths = _graph.sublayer_paths(model)
    prefix = tuple(found.backbone.split("/")) if found.backbone else ()
    paths = [(p, layer) for p, layer in paths if p[:len(prefix)] == prefix]
    attention = [p for p, layer in paths if isinstance(layer, keras.layers.MultiHeadAttention)]
    if not attention:
        raise ValueError(
            f"Expected a MultiHeadAttention inside the {found.family} to find its last "
            "block. Received: none; pass `layer=`")
    last = attention[-1]
    for depth in range(len(last) - 1, len(prefix), -1):
        block = last[:depth]
        norms = [p for p, layer in paths if len(p) == depth + 1 and p[:depth] == block
                 and isinstance(layer, keras.layers.LayerNormalization)]
        if norms:
            return "/".join(norms[0])
    raise ValueError(
        f"Expected a LayerNormalization in the block of {'/'.join(last)!r}. Received: "
        "none; pass `layer=`")


def check_grid(token_grid, prefix_tokens):
    """Validated ``(token_grid, prefix_tokens)`` as the CAM family takes them."""
    if token_grid is not None:
        ok = (isinstance(token_grid, (tuple, list)) and len(token_grid) == 2
              and all(isinstance(n, int) and not isinstance(n, bool) and n > 0
                      for n in token_grid))
        if not ok:
            raise ValueError(
                "Expected `token_grid` to be None or (h, w), two positive ints: the patch "
                f"tokens' rows and columns. Received: token_grid={token_grid!r}")
        token_grid = tuple(token_grid)
    if prefix_tokens is not None and (not isinstance(prefix_tokens, int) or isinstance(
            prefix_tokens, bool) or prefix_tokens < 0):
        raise ValueError(
            "Expected `prefix_tokens` to be None or an int >= 0: the tokens before the "
            f"patch tokens (class, distillation, registers). Received: "
            f"prefix_tokens={prefix_tokens!r}")
    return token_grid, prefix_tokens


def token_layout(forward, shape, name, token_grid=None, prefix_tokens=None):
    """``(prefix, (h, w))`` of the tokens of a layer output ``shape`` (without the batch
    axis) on an image, or None where there is no grid to find (a layer with its own
    position axes, or a sequence model's tokens).

    Args:
        forward: the ``ModelFunction`` (its input shape and ``vision_layout``).
        shape, name: the layer's output shape and path (for messages).
        token_grid, prefix_tokens: given explicitly, or None: the keras_hub backbone's
            (the prefix: else the tokens beyond ``h·w``).

    Raises:
        ValueError: a token layer on an image with no grid, or a grid and prefix that do
            not add up to the layer's tokens, naming them; a grid given for a layer
            that is not a token layer.
    """
    shape = tuple(shape)
    given = token_grid is not None or prefix_tokens is not None
    image = forward.input_shape is not None and len(forward.input_shape) == 3
    if len(shape) != 2:
        if given:
            raise ValueError(
                "Expected `token_grid`/`prefix_tokens` only for a token layer (tokens, "
                f"channels). Received: layer {name!r} with output shape {shape}")
        return None
    found = forward.vision_layout()
    if not given and found is None:
        if image:
            raise ValueError(
                f"Expected the patch grid of the token layer {name!r} (output shape "
                f"{shape}) to place a map on the image: pass token_grid=(h, w) and "
                "prefix_tokens= (class, distillation and register tokens before the "
                "patches). keras_hub ViT, DeiT and DINOv2 backbones give theirs. "
                "Received: a model whose layout is not known")
        return None  # a sequence model: the map runs along the tokens
    if not image:
        raise ValueError(
            "Expected an image input ((H, W, C)) for a token grid. Received: input shape "
            f"{forward.input_shape}")
    grid = token_grid or (found.grid if found is not None else None)
    if grid is None:
        raise ValueError(
            "Expected `token_grid=(h, w)` with `prefix_tokens` on a model whose layout is "
            f"not known. Received: token_grid=None, prefix_tokens={prefix_tokens}")
    if prefix_tokens is not None:
        prefix = prefix_tokens
    elif found is not None:
        prefix = found.prefix
    else:
        prefix = (shape[0] or 0) - grid[0] * grid[1]
    if shape[0] is None or shape[0] != prefix + grid[0] * grid[1] or prefix < 0:
        raise ValueError(
            f"Expected the token layer {name!r} to hold {max(prefix, 0)} prefix tokens "
            f"and {grid[0]}x{grid[1]} patch tokens. Received: output shape {shape}"
            + ("" if prefix_tokens is not None or found is None
               else f" (prefix read from the {found.family})"))
    return prefix, tuple(grid)


def to_grid(tokens, prefix, grid):
    """``(B, prefix + h·w, C) -> (B, h, w, C)``: the patch tokens on their grid."""
    patches = tokens[:, prefix:]
    return keras.ops.reshape(patches, (-1,) + tuple(grid) + tuple(patches.shape[2:]))
