"""Saliency methods: one per module, registered here by string id."""

from keras_dance.methods.attention import AttentionGradient, AttentionRollout
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

_REGISTRY = {}


def register(cls):
    """Registers a ``SaliencyMethod`` subclass under its ``name``: one line per method.

    The registry is the one list of methods: ``METHOD_NAMES``, ``get``, the command
    line's ``--method`` help and which methods take ``--layer``, and the benchmarks read
    it. Usable as a class decorator. Returns ``cls``.

    Raises:
        TypeError: ``cls`` is not a ``SaliencyMethod`` subclass.
        ValueError: its ``name`` is missing or taken by another class.
    """
    global METHOD_NAMES
    if not (isinstance(cls, type) and issubclass(cls, SaliencyMethod)):
        raise TypeError(f"Expected a SaliencyMethod subclass. Received: {cls!r}")
    if not isinstance(cls.name, str) or not cls.name:
        raise ValueError(f"Expected a method class with a `name`. Received: {cls.__name__} "
                         f"with name={cls.name!r}")
    if _REGISTRY.get(cls.name, cls) is not cls:
        raise ValueError(f"Expected a new method name. Received: name={cls.name!r}, already "
                         f"registered by {_REGISTRY[cls.name].__name__}")
    _REGISTRY[cls.name] = cls
    METHOD_NAMES = tuple(name for name, known in _REGISTRY.items() if known.listed)
    return cls


def unregister(name):
    """Removes a method registered by ``register`` (e.g. one a test defined)."""
    global METHOD_NAMES
    _REGISTRY.pop(name, None)
    METHOD_NAMES = tuple(name for name, known in _REGISTRY.items() if known.listed)


def registered():
    """``{name: class}`` of every registered method, in registration order."""
    return dict(_REGISTRY)


#: The method ids ``Explainer(method=...)`` accepts by name (derived from the registry).
METHOD_NAMES = ()

for _cls in (Gradient, GradientXInput, IntegratedGradients, SmoothGrad, SquareGrad, VarGrad,
             CGI, Competitive, GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM, Occlusion, RISE,
             KernelSHAP, GuidedBackprop, AttentionRollout, AttentionGradient):
    register(_cls)
del _cls


def general_method_names():
    """The listed methods that apply to any differentiable model: ``METHOD_NAMES`` less
    those that read a transformer's attention."""
    return tuple(name for name in METHOD_NAMES if not _REGISTRY[name].reads_attention)


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
    "register", "registered", "unregister",
]
