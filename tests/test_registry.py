"""The method registry: one file plus one registration line adds a method everywhere."""

import numpy as np
import pytest
from helpers import small_conv_model

import keras_dance as kd
from keras_dance import cli
from keras_dance.methods.base import score_gradients


class DoubledGradient(kd.methods.SaliencyMethod):
    """A throwaway method: twice the gradient (defined and registered in this test only)."""

    name = "doubled_gradient_for_test"

    def __call__(self, x, forward, targets, budget=None):
        return 2.0 * score_gradients(x, forward, targets)


class LayerReader(kd.methods.GradCAM):
    """A throwaway method that takes ``layer=`` (as the CAM family does)."""

    name = "layer_reader_for_test"


@pytest.fixture
def registered():
    kd.methods.register(DoubledGradient)
    kd.methods.register(LayerReader)
    yield
    kd.methods.unregister(DoubledGradient.name)
    kd.methods.unregister(LayerReader.name)


def test_a_registered_method_is_listed_explained_and_in_the_cli_help(registered):
    assert DoubledGradient.name in kd.methods.METHOD_NAMES
    assert LayerReader.name in kd.methods.METHOD_NAMES
    help_text = cli._command_help("explain")
    assert DoubledGradient.name in help_text
    # --layer goes to the methods that declare takes_layer, the new one among them.
    layer_help = cli.FLAGS["layer"].help
    assert LayerReader.name in layer_help and "gradcam" in layer_help
    assert DoubledGradient.name not in layer_help

    model = small_conv_model(shape=(8, 8, 1))
    x = np.random.default_rng(0).uniform(size=(3, 8, 8, 1)).astype(np.float32)
    doubled = kd.Explainer(model, method=DoubledGradient.name).explain(x, targets=1)
    plain = kd.Explainer(model, method="gradient").explain(x, targets=1)
    np.testing.assert_allclose(doubled, 2.0 * plain, rtol=1e-6, atol=1e-7)
    cam = kd.Explainer(model, method={"name": LayerReader.name, "config": {"layer": "conv2"}})
    assert cam.explain(x).shape == x.shape


def test_unregistered_names_disappear_everywhere(registered):
    kd.methods.unregister(DoubledGradient.name)
    assert DoubledGradient.name not in kd.methods.METHOD_NAMES
    assert DoubledGradient.name not in cli._command_help("explain")
    with pytest.raises(ValueError, match="Expected `method` to be one of"):
        kd.Explainer(small_conv_model(shape=(8, 8, 1)), method=DoubledGradient.name)


def test_the_registry_refuses_what_is_not_a_method_and_taken_names():
    with pytest.raises(TypeError, match="SaliencyMethod subclass"):
        kd.methods.register(object)

    class Clash(kd.methods.SaliencyMethod):
        name = "gradient"

    with pytest.raises(ValueError, match="already registered by Gradient"):
        kd.methods.register(Clash)


def test_method_names_come_from_the_registry():
    registry = kd.methods.registered()
    assert kd.methods.METHOD_NAMES == tuple(n for n, c in registry.items() if c.listed)
    assert len(kd.methods.METHOD_NAMES) == 17 and "competitive" not in kd.methods.METHOD_NAMES
    black_box = {n for n, c in registry.items() if not c.needs_gradients}
    assert black_box == {"occlusion", "rise", "kernel_shap", "scorecam", "attention_rollout"}
    attention = set(kd.methods.METHOD_NAMES) - set(kd.methods.general_method_names())
    assert attention == {"attention_rollout", "attention_gradient"}
