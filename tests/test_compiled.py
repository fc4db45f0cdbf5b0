"""The explainer's compiled functions: built once, batch-polymorphic, never retraced."""

import numpy as np
from helpers import small_conv_model

import keras_dance as kd


def test_ten_calls_of_every_kind_trace_each_function_once():
    model = small_conv_model(shape=(8, 8, 1))
    rng = np.random.default_rng(0)
    batches = [rng.uniform(size=(n, 8, 8, 1)).astype(np.float32)
               for n in (1, 2, 3, 5, 8, 13, 2, 7, 4, 1)]
    plain = kd.Explainer(model, kd.methods.IntegratedGradients(steps=4), batch_size=8)
    dance = kd.Explainer(model, decoys=kd.DecoyConfig(layer="conv1", patch=4, steps=2),
                         batch_size=16)

    def score(outputs):
        return outputs[:, 1] - outputs[:, 0]

    for x in batches:
        plain.explain(x)
        plain.explain(x, targets=1, verbose=1)
        dance.explain(x)
    assert plain.function.experimental_get_tracing_count() == 1
    assert dance.function.experimental_get_tracing_count() == 1
    # A score function's maps are traced for the first batch's shape, then once more with
    # the batch axis relaxed (user score functions may read static shapes); never again.
    for x in batches[:3]:
        plain.explain(x, targets=score)
    traces = plain._functions.for_score_function(score).experimental_get_tracing_count()
    for x in batches[3:]:
        plain.explain(x, targets=score)
    assert traces <= 2
    assert plain._functions.for_score_function(score).experimental_get_tracing_count() == traces


def test_the_portable_function_gives_the_same_maps_without_xla_kernels():
    model = small_conv_model(shape=(8, 8, 1))
    x = np.random.default_rng(1).uniform(size=(3, 8, 8, 1)).astype(np.float32)
    explainer = kd.Explainer(model, decoys=kd.DecoyConfig(layer="conv1", patch=4, steps=3))
    targets = np.full(3, -1, np.int32)
    fused = explainer.function(x, targets)
    portable = explainer.compiled(portable=True)(x, targets)
    np.testing.assert_allclose(portable[0], fused[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(portable[1], fused[1])
    # The explainer's own function is untouched (export no longer flips engine.fuse).
    assert "fuse" not in vars(explainer.decoys)
