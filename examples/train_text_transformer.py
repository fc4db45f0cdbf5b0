"""Trains a small transformer text classifier on the synthetic sentiment task.

The same data as ``examples/train_text.py`` (``kd.datasets.make_sentiment``: 16 tokens,
the label decided by one sentiment word and its negation scope), the model Keras users
build from keras_hub's layers (keras.io's "Text classification with Transformer"):
``TokenAndPositionEmbedding`` (32 dimensions), one ``TransformerEncoder``
(2 heads, 64 hidden units), mean pooling over the sequence, a dense layer of logits.
Writes saved_models/text_transformer.keras (loading it needs keras_hub: the [hub] extra;
the vocabulary is the Kim CNN's, saved_models/text_cnn.vocab.txt) and prints the
held-out accuracy.

Run: .venv/bin/python examples/train_text_transformer.py   (about 30 s on 2 cores)
"""

import argparse

import keras
import keras_hub
from _setup import add_quick_flag, deterministic

import keras_dance as kd


def text_transformer(vocabulary_size, length=16, dimensions=32, heads=2, hidden=64):
    ids = keras.Input((length,), dtype="int32", name="tokens")
    embedded = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary_size, length, dimensions, name="embedding")(ids)
    encoded = keras_hub.layers.TransformerEncoder(hidden, heads, dropout=0.1,
                                                  name="encoder")(embedded)
    pooled = keras.layers.GlobalAveragePooling1D(name="pool")(encoded)
    # Logits out (no softmax): see docs/layers.md on a cloned copy of this graph.
    outputs = keras.layers.Dense(2, name="logits")(
        keras.layers.Dropout(0.1, name="dropout")(pooled))
    return keras.Model(ids, outputs, name="text_transformer")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(kd.datasets.SAVED_MODELS / "text_transformer.keras"))
    add_quick_flag(parser)
    args = parser.parse_args()
    deterministic(0)
    x, y, _ = kd.datasets.make_sentiment(300 if args.quick else 8000, seed=1)
    x_test, y_test, _ = kd.datasets.make_sentiment(1000, seed=2)
    model = text_transformer(len(kd.datasets.SENTIMENT_VOCABULARY))
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=1 if args.quick else 30, verbose=2, shuffle=True)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    model.save(args.out)
    print(f"text_transformer: {model.count_params()} parameters, held-out accuracy "
          f"{accuracy:.4f} on {len(y_test)} sentences -> {args.out}")


if __name__ == "__main__":
    main()
