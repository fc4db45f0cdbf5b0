"""Property-based tests (Hypothesis): generated inputs give a clean error or a right answer.

Invariants: every call either raises ``TypeError``/``ValueError`` with a message in the
house style ("Expected …") or returns finite values of the right shape; the user's model
is untouched; the explainer still gives the reference maps afterwards. The profile
``ci`` (the default) keeps the run to seconds; ``HYPOTHESIS_PROFILE=thorough`` runs more.
"""

import os

import keras
import numpy as np
import pytest
from helpers import assert_unchanged, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import keras_dance as kd

settings.register_profile("ci", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

CLEAN = (TypeError, ValueError)

finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=32)
dtypes = st.sampled_from([np.float32, np.float64, np.int32, np.uint8, np.bool_, np.str_])


def _array(shape_strategy, elements=finite_or_not):
    return dtypes.flatmap(lambda dtype: hnp.arrays(
        dtype, shape_strategy,
        elements=(st.text(alphabet="abc1.", max_size=2) if dtype is np.str_ else
                  st.booleans() if dtype is np.bool_ else
                  st.integers(0, 255) if dtype in (np.int32, np.uint8) else elements)))


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 1))
    h = keras.layers.Conv2D(3, 3, padding="same", activation="tanh", name="conv")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(h))
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def explainer(model):
    return kd.Explainer(model)


@given(x=_array(hnp.array_shapes(min_dims=0, max_dims=5, max_side=7)))
def test_explain_gives_a_clean_error_or_finite_maps(model, explainer, x):
    before = snapshot(model)
    reference_input = np.linspace(0, 1, 36, dtype=np.float32).reshape(1, 6, 6, 1)
    reference = explainer.explain(reference_input)
    try:
        maps = explainer.explain(x)
    except CLEAN as error:
        assert "Expected" in str(error)
    else:
        assert maps.shape == x.shape and maps.dtype == np.float32
        assert np.all(np.isfinite(maps))
    assert_unchanged(model, before)
    np.testing.assert_array_equal(explainer.explain(reference_input), reference)


@given(targets=st.one_of(
    st.none(), st.integers(-5, 8), st.floats(allow_nan=True), st.text(max_size=3),
    hnp.arrays(np.int64, st.integers(0, 4), elements=st.integers(-3, 5)),
    hnp.arrays(np.float32, 2, elements=finite_or_not)))
def test_targets_give_a_clean_error_or_maps(explainer, targets):
    x = np.random.default_rng(0).uniform(size=(2, 6, 6, 1)).astype(np.float32)
    try:
        maps, details = explainer.explain(x, targets, return_details=True)
    except CLEAN as error:
        assert "Expected" in str(error)
    else:
        assert maps.shape == x.shape and np.all(np.isfinite(maps))
        assert np.all((details["targets"] >= 0) & (details["targets"] < 3))


_config_values = {
    "patch": st.one_of(st.none(), st.integers(-2, 9), st.tuples(st.integers(0, 4),
                                                                 st.integers(0, 4)),
                       st.floats(allow_nan=True), st.text(max_size=2)),
    "stride": st.one_of(st.none(), st.integers(-2, 9), st.booleans()),
    "epsilon": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-1, 2)),
    "steps": st.one_of(st.integers(-2, 2**65), st.floats(allow_nan=True)),
    "seed": st.one_of(st.integers(-2, 2**65), st.text(max_size=2)),
    "value_range": st.one_of(st.tuples(finite_or_not, finite_or_not), st.text(max_size=2)),
    "kind": st.sampled_from(["optimized", "constant", "other", 3]),
}


@given(values=st.fixed_dictionaries({}, optional=_config_values))
def test_decoy_configs_are_valid_or_refused_at_the_door(model, values):
    try:
        config = kd.DecoyConfig(layer="conv", **{**values, "steps": values.get("steps", 2)})
    except CLEAN as error:
        assert "Expected" in str(error)
        return
    assert kd.DecoyConfig.from_config(config.get_config()) == config
    try:
        engine = kd.Explainer(model, decoys=config).decoys
    except ValueError as error:  # only the patch can disagree with the input's shape
        assert "patch" in str(error)
        return
    assert engine.num_decoys >= 1 and 1 <= engine.config.steps


@given(maps=_array(hnp.array_shapes(min_dims=1, max_dims=4, max_side=6)),
       percentile=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 200)))
def test_postprocess_is_in_unit_range_or_refuses(maps, percentile):
    try:
        shown = kd.postprocess(maps, percentile=percentile)
    except CLEAN as error:
        assert "Expected" in str(error)
    else:
        assert np.all(np.isfinite(shown)) and shown.min() >= 0 and shown.max() <= 1


@given(maps=_array(st.just((2, 5, 5))), masks=_array(st.sampled_from([(2, 5, 5), (2, 4)])))
def test_localisation_metrics_are_fractions_or_refuse(maps, masks):
    for metric in (kd.metrics.relevance_mass, kd.metrics.sparseness):
        try:
            values = metric(maps, masks) if metric is kd.metrics.relevance_mass else metric(maps)
        except CLEAN as error:
            assert "Expected" in str(error)
        else:
            assert values.shape == (2,) and np.all((values >= 0) & (values <= 1 + 1e-6))
