"""SavedModel export with serving signatures (ARCHITECTURE.md "Export contract")."""

import os
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf


class _ServingModule(tf.Module):
    """Holds the models (so their variables are saved) and the signature functions."""


def export(explainer, path, overwrite=False):
    """See ``Explainer.export``."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(
            f"Expected `path` to be a directory path (str or os.PathLike). Received: "
            f"path={path!r}"
        )
    if not isinstance(overwrite, bool):
        raise TypeError(
            f"Expected `overwrite` to be a bool. Received: overwrite={overwrite!r}"
        )
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
        raise FileExistsError(
            f"Expected `path` to be a new or empty directory (or overwrite=True). "
            f"Received: path={str(path)!r}, which exists and is not empty"
        )
    explainer._logits.sync()
    engine = explainer.decoys
    fused = None if engine is None else engine.__dict__.get("fuse")
    if engine is not None:
        engine.fuse = False  # plain TensorFlow kernels: servable without XLA
    try:
        function = explainer._build_indexed_function(jit_compile=False)
        module = _ServingModule()
        module.model = explainer.model
        module.logits = explainer._logits.model
        # F_l runs the model's own layers: their variables are saved with module.model.
        spec = tf.TensorSpec((None,) + explainer.input_shape, tf.float32, name="inputs")
        target_spec = tf.TensorSpec((None,), tf.int32, name="target")

        @tf.function(input_signature=[spec])
        def serving_default(inputs):
            return {"predictions": explainer._inputs.model_outputs(inputs)}

        @tf.function(input_signature=[spec])
        def explain(inputs):
            maps, targets, _, _ = function(inputs, tf.fill([tf.shape(inputs)[0]], -1))
            return {"saliency": maps, "target": targets}

        @tf.function(input_signature=[spec, target_spec])
        def explain_target(inputs, target):
            maps, targets, _, _ = function(inputs, target)
            return {"saliency": maps, "target": targets}

        module.serving_default = serving_default
        module.explain = explain
        module.explain_target = explain_target
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            tf.saved_model.save(module, str(staging), signatures={
                "serving_default": serving_default, "explain": explain,
                "explain_target": explain_target})
            if path.exists():
                aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
                os.replace(path, aside / "old")
                os.replace(staging, path)
                shutil.rmtree(aside, ignore_errors=True)
            else:
                os.replace(staging, path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        if engine is not None:
            if fused is None:
                del engine.fuse
            else:
                engine.fuse = fused
    return path
