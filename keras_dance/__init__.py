"""keras_dance: saliency maps people can trust, for Keras 3 / TensorFlow classifiers."""

from keras_dance import attacks, callbacks, datasets, methods, metrics, sanity, training
from keras_dance.decoys import DecoyConfig
from keras_dance.explainer import Explainer
from keras_dance.postprocess import postprocess

__version__ = "0.1.0"


def __getattr__(name):
    # kd.viz imports matplotlib; load it only when it is used.
    if name == "viz":
        import importlib

        return importlib.import_module("keras_dance.viz")
    raise AttributeError(f"module 'keras_dance' has no attribute {name!r}")

__all__ = ["DecoyConfig", "Explainer", "attacks", "callbacks", "datasets", "methods", "metrics", "postprocess", "sanity", "training",
           "__version__"]
