"""keras_dance: saliency maps people can trust, for Keras 3 classifiers on TensorFlow, JAX
and PyTorch.

Names are imported on first use (PEP 562): ``import keras_dance`` does not import
TensorFlow, so the command line can quiet TensorFlow's start-up before it loads, and
``kd.viz`` (matplotlib) costs nothing until it is used.
"""

import importlib

# numpy only: bound eagerly so that the name is the function, not its module.
from keras_dance.postprocess import postprocess

__version__ = "0.1.0"

_NAMES = {
    "DecoyConfig": ("keras_dance.decoys", "DecoyConfig"),
    "Explainer": ("keras_dance.explainer", "Explainer"),
    "TextExplanation": ("keras_dance.text", "TextExplanation"),
}
_MODULES = ("attacks", "callbacks", "datasets", "methods", "metrics", "sanity", "training",
            "decoys", "viz", "distributed", "ray", "beam", "text")

__all__ = ["DecoyConfig", "Explainer", "TextExplanation", "attacks", "beam", "callbacks", "datasets",
           "distributed", "methods", "metrics", "postprocess", "ray", "sanity", "text",
           "training",
           "__version__"]


#: A backend's framework -> the extra that installs it.
_EXTRAS = {"jax": "jax", "jaxlib": "jax", "torch": "torch"}


def _import(module):
    """``importlib.import_module``, saying which extra to install when Keras's backend
    (``KERAS_BACKEND``) is a framework this environment lacks."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        missing = (getattr(error, "name", None) or "").split(".")[0]
        if missing not in _EXTRAS:
            raise
        extra = _EXTRAS[missing]
        raise ImportError(
            f"Expected {missing!r} installed for the Keras backend it serves "
            f"(KERAS_BACKEND={extra}): pip install 'keras-dance[{extra}]'. "
            f"Received: {error}") from error


def __getattr__(name):
    if name in _NAMES:
        module, attribute = _NAMES[name]
        value = getattr(_import(module), attribute)
        globals()[name] = value
        return value
    if name in _MODULES:
        return _import(f"keras_dance.{name}")
    raise AttributeError(f"module 'keras_dance' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_MODULES))
