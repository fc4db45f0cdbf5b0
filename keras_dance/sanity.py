"""Sanity checks (Adebayo et al., NeurIPS 2018): does the map depend on the model?

A method passes when its maps change as the trained weights are replaced by random ones
(model-parameter randomisation) and when the model is retrained on shuffled labels.
Similarity is measured by ``keras_dance._similarity.compare``: Spearman rank correlation
of absolute and of signed maps, SSIM and HOG-feature Pearson correlation — low values
mean the maps changed (the method passes).
"""

import dataclasses

import keras
import numpy as np

from keras_dance._similarity import compare


def _explainer_like(explainer, model):
    from keras_dance.explainer import Explainer

    config = explainer.decoy_config
    if config is not None and isinstance(config.layer, keras.layers.Layer):
        # A layer object belongs to the original model: name it by its path in the copy.
        config = dataclasses.replace(config, layer=explainer.decoys.layer_name)
    tokens = {}
    if explainer.tokens:  # the same embedding layer, reduction and padding in the copy
        tokens = dict(embedding_layer=explainer.model_view.embedding_path,
                      token_reduction=explainer.token_reduction,
                      pad_id=explainer.model_view.pad_id)
    return Explainer(model, method=explainer.method, decoys=config,
                     aggregation=explainer.aggregation, batch_size=explainer.batch_size,
                     preprocess=explainer.preprocess, input_shape=explainer.input_shape,
                     **tokens)


def _copy(model):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _randomise(layer, seed):
    for index, variable in enumerate(layer.weights):
        name = variable.name.split("/")[-1]
        initializer = getattr(layer, f"{name}_initializer", None)
        if initializer is None:
            initializer = keras.initializers.RandomNormal(stddev=0.05)
        config = keras.initializers.serialize(initializer)
        if isinstance(config, dict) and "seed" in config.get("config", {}):
            config = dict(config, config={**config["config"], "seed": seed + index})
        initializer = keras.initializers.deserialize(config)
        variable.assign(initializer(variable.shape, dtype=variable.dtype))


def weighted_layers(model):
    """The model's layers that hold weights, input side first."""
    return [layer for layer in model.layers if layer.weights]


def model_randomisation(explainer, x, targets=None, mode="cascading", seed=0):
    """Maps of randomised copies of the model against the trained model's maps.

    Args:
        explainer: a ``kd.Explainer``; its model is copied, never changed.
        x: inputs.
        targets: classes to explain; None: the trained model's predictions (kept fixed for
            every randomised copy). Defaults to None.
        mode: "cascading" (randomise from the top layer down, cumulatively),
            "independent" (one layer at a time) or "full" (one step: every weighted layer
            at once, the cascade's last step for the cost of one explanation — for
            expensive explainers such as DANCE on deep models). Defaults to "cascading".
        seed: seed of the re-initialisation. Defaults to 0.

    Returns:
        A list, one entry per step (top layer first): ``{"layer": name, "spearman_abs",
        "spearman_signed", "ssim", "hog_pearson"}`` with per-input arrays.
    """
    from keras_dance import _validation

    _validation.check_positive_int(seed, "seed", minimum=0)
    if not _validation.is_choice(mode, ("cascading", "independent", "full")):
        raise ValueError(
            f"Expected `mode` 'cascading', 'independent' or 'full'. Received: mode={mode!r}"
        )
    if targets is None:
        targets = explainer.predict_classes(x)
    reference = explainer.explain(x, targets)
    layers = [layer.name for layer in weighted_layers(explainer.model)][::-1]
    results = []
    copy = _copy(explainer.model)
    for step, name in enumerate(layers):
        if mode == "independent":
            copy = _copy(explainer.model)
        _randomise(copy.get_layer(name), seed + 1000 * step)
        if mode == "full" and step < len(layers) - 1:
            continue
        maps = _explainer_like(explainer, copy).explain(x, targets)
        results.append({"layer": "all" if mode == "full" else name, **compare(reference, maps)})
    return results


def train_on_random_labels(model, x, y, epochs=10, batch_size=32, seed=0,
                           loss="sparse_categorical_crossentropy", optimizer="adam"):
    """The random-label model of the check: ``model``'s architecture, fresh weights,
    trained on a seeded permutation of ``y`` (the user's model is not touched).

    Returns:
        The trained copy.
    """
    from keras_dance import _validation

    _validation.check_positive_int(epochs, "epochs")
    _validation.check_positive_int(batch_size, "batch_size")
    _validation.check_positive_int(seed, "seed", minimum=0)
    if len(np.asarray(x)) != len(np.asarray(y)):
        raise ValueError(f"Expected one label per input in `y` ({len(np.asarray(x))}). "
                         f"Received: y of length {len(np.asarray(y))}")
    keras.utils.set_random_seed(seed)
    copy = keras.models.clone_model(model)  # fresh initial weights
    shuffled = np.random.default_rng(seed).permutation(np.asarray(y))
    copy.compile(optimizer=optimizer, loss=loss)
    copy.fit(np.asarray(x, np.float32), shuffled, epochs=epochs, batch_size=batch_size,
             verbose=0)
    return copy


def passes(similarity, threshold=0.5):
    """The verdict: the maps changed, i.e. mean Spearman of absolute maps < ``threshold``.

    Args:
        similarity: a ``random_label_check`` dict, or a ``model_randomisation`` list
            (its last, fully randomised step is judged).
        threshold: the rank correlation below which the maps count as changed.
            Defaults to 0.5.
    """
    if isinstance(similarity, list) and similarity:
        similarity = similarity[-1]
    if not isinstance(similarity, dict) or "spearman_abs" not in similarity:
        raise ValueError(
            "Expected `similarity` from random_label_check or model_randomisation (with "
            f"'spearman_abs'). Received: {type(similarity).__name__}")
    if (isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number))
            or not np.isfinite(threshold)):
        raise ValueError(f"Expected a finite number `threshold`. Received: threshold={threshold!r}")
    return bool(np.nanmean(similarity["spearman_abs"]) < threshold)


def random_label_check(explainer, random_model, x, targets=None):
    """Maps of a model trained on shuffled labels against the trained model's maps.

    Args:
        explainer: explainer of the model trained on true labels.
        random_model: the same architecture trained on randomly permuted labels.
        x: inputs; targets: classes (None: the trained model's predictions).

    Returns:
        ``compare(...)``'s dict of per-input arrays.
    """
    if targets is None:
        targets = explainer.predict_classes(x)
    reference = explainer.explain(x, targets)
    return compare(reference, _explainer_like(explainer, random_model).explain(x, targets))


def summarise(results):
    """Means over inputs (NaN-aware) of ``model_randomisation`` results."""
    return [{key: (value if key == "layer" else float(np.nanmean(value)))
             for key, value in entry.items()} for entry in results]
