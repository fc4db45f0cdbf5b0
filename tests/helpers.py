"""Shared test helpers: analytic models and model snapshots."""

import keras
import numpy as np

from keras_dance.model_view import ModelFunction  # noqa: F401  (analytic forwards)


def snapshot(model):
    """Everything a call must leave alone: weights, layers and their activations."""
    return (
        [w.copy() for w in model.get_weights()],
        [id(layer) for layer in model.layers],
        [getattr(layer, "activation", None) for layer in model.layers],
        [layer.get_config() for layer in model.layers],
    )


def assert_unchanged(model, before):
    after = snapshot(model)
    assert len(before[0]) == len(after[0])
    for a, b in zip(before[0], after[0]):
        np.testing.assert_array_equal(a, b)
    assert before[1:] == after[1:]


def linear_model(weights, activation=None):
    """Dense without bias: logits_k = sum_i x_i W[i, k]."""
    weights = np.asarray(weights, np.float32)
    inputs = keras.Input((weights.shape[0],))
    outputs = keras.layers.Dense(weights.shape[1], use_bias=False, activation=activation,
                                 name="linear")(inputs)
    model = keras.Model(inputs, outputs)
    model.layers[-1].set_weights([weights])
    return model


def small_conv_model(seed=0, activation="softmax", classes=4, shape=(8, 8, 2)):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    h = keras.layers.Conv2D(6, 3, activation="relu", name="conv1")(inputs)
    h = keras.layers.Conv2D(6, 3, activation="tanh", padding="same", name="conv2")(h)
    h = keras.layers.Flatten()(h)
    outputs = keras.layers.Dense(classes, activation=activation, name="out")(h)
    return keras.Model(inputs, outputs)


class Block(keras.layers.Layer):
    """A custom layer calling a convolution: its sublayer is not a graph node."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner_conv = keras.layers.Conv2D(6, 3, padding="same", name="inner_conv")

    def build(self, input_shape):
        self.inner_conv.build(input_shape)

    def call(self, x):
        return keras.ops.relu(self.inner_conv(x))


def block_models():
    """The same computation with the convolution inside a custom layer, and as a node."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((8, 8, 2))
    block = Block(name="block")
    h = keras.layers.GlobalAveragePooling2D()(block(inputs))
    nested = keras.Model(inputs, keras.layers.Dense(3, name="out")(h))
    inputs = keras.Input((8, 8, 2))
    conv = keras.layers.Conv2D(6, 3, padding="same", name="inner_conv")
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(conv(inputs)))
    flat = keras.Model(inputs, keras.layers.Dense(3, name="out")(h))
    conv.set_weights(block.inner_conv.get_weights())
    flat.get_layer("out").set_weights(nested.get_layer("out").get_weights())
    return nested, flat
