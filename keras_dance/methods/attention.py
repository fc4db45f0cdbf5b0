"""Attention methods for transformers: attention rollout and gradient-weighted attention.

Both read the attention probabilities ``A_l`` ``(B, heads, T, T)`` of every
``keras.layers.MultiHeadAttention`` the model calls, in call order, without changing the
model: each layer computes its attention explicitly while the explained call runs
(``ModelFunction.attention_forward``; the probe checks the logits are the model's).
They relate tokens to tokens, ``R`` ``(B, T, T)``; the map is one token's row of ``R``:

- images (a vision transformer): the class token's row over the patch tokens, on the
  patch grid (``kd._vit``), upsampled to the input like a CAM (bilinear, corners
  aligned);
- token models (text): the row over every token, one score per token (the map's
  embedding axis repeats it, so ``token_reduction="mean"``, the default, gives it).

``query`` picks the row: "auto" is the class token (row 0) where the model pools one (a
vision transformer with a prefix token, keras_hub's text classifiers), else the mean of
every row (a model that averages its tokens); an int names a row.
"""

from keras import ops

from keras_dance import _vit, backend
from keras_dance.methods.base import SaliencyMethod
from keras_dance.methods.cam import _as_input_map

#: keras_hub text classifiers that pool the first token (class names).
_FIRST_TOKEN_TASKS = ("TextClassifier",)


class _AttentionMethod(SaliencyMethod):

    reads_attention = True

    def __init__(self, query="auto", token_grid=None, prefix_tokens=None):
        if not (query in ("auto", "mean") or (isinstance(query, int)
                                              and not isinstance(query, bool))):
            raise ValueError(
                "Expected `query` to be 'auto', 'mean' or a token index (the row of the "
                f"token-to-token relevance that becomes the map). Received: query={query!r}")
        self.query = query
        self.token_grid, self.prefix_tokens = _vit.check_grid(token_grid, prefix_tokens)

    def _layout(self, forward):
        """``(attention function, (prefix, grid) or None, row)``."""
        function = forward.attention_forward()
        tokens = function.shapes[0][-1]
        found = _vit.token_layout(forward, (tokens, None), function.layer_names[0],
                                  self.token_grid, self.prefix_tokens)
        if found is None and forward.input_shape is not None and len(
                forward.input_shape) != 2:
            raise ValueError(
                f"Expected an image or a token model for {type(self).__name__}. Received: "
                f"input shape {forward.input_shape}")
        if found is None and forward.input_shape[0] != tokens:
            raise ValueError(
                f"Expected the attention over the model's {forward.input_shape[0]} tokens. "
                f"Received: {function.layer_names[0]!r} attends over {tokens}")
        row = self.query
        if row == "auto":
            row = 0 if _pools_first_token(forward, found) else "mean"
        if isinstance(row, int) and not -tokens <= row < tokens:
            raise ValueError(
                f"Expected `query` in [{-tokens}, {tokens}) (the model's tokens). "
                f"Received: query={row}")
        return function, found, row

    def check(self, forward):
        self._layout(forward)

    def _map(self, relevance, x, found, row):
        """``R`` ``(B, T, T)`` -> the map of ``x``'s shape."""
        scores = ops.mean(relevance, axis=1) if row == "mean" else relevance[:, row]
        if found is None:  # tokens: one score per token, repeated over the embedding
            return ops.broadcast_to(ops.expand_dims(scores, -1), ops.shape(x))
        prefix, grid = found
        cam = ops.reshape(scores[:, prefix:], (-1,) + grid)
        return _as_input_map(cam, x)

    def get_config(self):
        return {"query": self.query, "token_grid": self.token_grid,
                "prefix_tokens": self.prefix_tokens}


def _pools_first_token(forward, found):
    if found is not None:
        return found[0] > 0 and getattr(forward.model, "pooling", "token") != "gap"
    return forward.model is not None and type(forward.model).__name__.endswith(
        _FIRST_TOKEN_TASKS)


def _identity_like(probabilities):
    tokens = probabilities.shape[-1]
    return ops.eye(tokens, dtype=probabilities.dtype)


class AttentionRollout(_AttentionMethod):
    """Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in
    Transformers"): each layer's head-averaged attention plus the identity (the
    residual), rows renormalised, multiplied over the layers from the first:
    ``R = Ã_L ⋯ Ã_1``. Class-agnostic: every target gets the same map. No gradient.

    Args:
        query: the row of ``R`` that becomes the map: "auto" (the class token where the
            model pools one, else the mean of the rows), "mean" or a token index.
            Defaults to "auto".
        token_grid, prefix_tokens: as ``GradCAM``'s (images whose layout is not read
            from a keras_hub backbone).

    Example:
        >>> method = kd.methods.AttentionRollout()
    """

    name = "attention_rollout"
    needs_gradients = False

    def __call__(self, x, forward, targets, budget=None):
        del targets, budget
        function, found, row = self._layout(forward)
        attentions, _ = function(x)
        relevance = None
        for probabilities in attentions:
            mixed = ops.mean(ops.stop_gradient(probabilities), axis=1)
            mixed = mixed + _identity_like(mixed)
            mixed = mixed / ops.sum(mixed, axis=-1, keepdims=True)
            relevance = mixed if relevance is None else ops.matmul(mixed, relevance)
        return self._map(relevance, x, found, row)


class AttentionGradient(_AttentionMethod):
    """Gradient-weighted attention (Chefer, Gur & Wolf 2021, "Generic Attention-model
    Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers", the
    self-attention rule): from ``R = I``, for each layer in call order
    ``R ← R + Ā·R`` with ``Ā = mean over heads of ReLU(∇A ⊙ A)`` (the target score's
    gradient at the attention probabilities). Class-specific; one forward and backward
    pass per input.

    Args:
        query, token_grid, prefix_tokens: as ``AttentionRollout``.

    Example:
        >>> method = kd.methods.AttentionGradient()
    """

    name = "attention_gradient"

    def __call__(self, x, forward, targets, budget=None):
        del budget
        function, found, row = self._layout(forward)

        def scored(rows, at_layer=None):
            attentions, outputs = function(rows, at_layer)
            return attentions, ops.sum(targets.score(outputs))

        attentions, grads = backend.layer_gradient(scored, x)
        relevance = None
        for probabilities, grad in zip(attentions, grads):
            weighted = ops.mean(ops.relu(grad * probabilities), axis=1)
            if relevance is None:
                relevance = ops.broadcast_to(_identity_like(weighted), ops.shape(weighted))
            relevance = relevance + ops.matmul(weighted, relevance)
        return self._map(relevance, x, found, row)
