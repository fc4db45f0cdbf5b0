"""Saliency methods: one per module, registered here by string id."""

from keras_dance.methods.base import SaliencyMethod
from keras_dance.methods.cam import GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM
from keras_dance.methods.guided_backprop import GuidedBackprop
from keras_dance.methods.kernel_shap import KernelSHAP
from keras_dance.methods.occlusion import Occlusion
from keras_dance.methods.rise import RISE
from keras_dance.methods.competitive import CGI, Competitive, compete
from keras_dance.methods.gradient import Gradient
from keras_dance.methods.gradient_x_input import GradientXInput
from keras_dance.methods.integrated_gradients import IntegratedGradients
from keras_dance.methods.noise_tunnel import SquareGrad, VarGrad
from keras_dance.methods.smoothgrad import SmoothGrad

_REGISTRY = {
    cls.name: cls
    for cls in (Gradient, GradientXInput, IntegratedGradients, SmoothGrad, SquareGrad, VarGrad,
                CGI, Competitive, GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM, Occlusion,
                RISE, KernelSHAP, GuidedBackprop)
}

#: The method ids ``Explainer(method=...)`` accepts.
METHOD_NAMES = ("gradient", "gradient_x_input", "integrated_gradients", "smoothgrad",
                "squaregrad", "vargrad", "cgi", "gradcam", "gradcam_plus_plus", "layercam",
                "scorecam", "occlusion", "rise", "kernel_shap", "guided_backprop")


def get(identifier):
    """Returns a method instance from a name, a ``{"name", "config"}`` dict or an instance.

    Raises:
        ValueError: for an unknown name; the message lists the valid ones.
        TypeError: for anything else.
    """
    if isinstance(identifier, SaliencyMethod):
        return identifier
    if isinstance(identifier, dict) and "name" in identifier:
        cls = _lookup(identifier["name"])
        if not isinstance(identifier.get("config") or {}, dict):
            raise TypeError(
                "Expected `method['config']` to be a dict of the method's settings. "
                f"Received: config={identifier['config']!r}")
        config = dict(identifier.get("config") or {})
        if "method" in config and isinstance(config["method"], dict):
            config["method"] = get(config["method"])
        return cls.from_config(config)
    if isinstance(identifier, str):
        return _lookup(identifier)()
    raise TypeError(
        "Expected `method` to be a method name or a keras_dance.methods instance. "
        f"Received: method={identifier!r} of type {type(identifier).__name__}"
    )


def _lookup(name):
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(
            f"Expected `method` to be one of {sorted(_REGISTRY)} or a "
            f"keras_dance.methods instance. Received: method={name!r}"
        )
    return _REGISTRY[name]


__all__ = [
    "CGI", "Competitive", "GradCAM", "GradCAMPlusPlus", "Gradient", "GradientXInput",
    "GuidedBackprop", "IntegratedGradients", "KernelSHAP", "LayerCAM", "Occlusion", "RISE",
    "ScoreCAM",
    "METHOD_NAMES", "SaliencyMethod", "SmoothGrad", "SquareGrad", "VarGrad", "compete", "get",
]
