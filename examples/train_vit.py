"""Trains a small keras_hub vision transformer on the shapes task (ground-truth masks),
deterministically.

A ``ViTImageClassifier`` (32×32 grayscale images, 4×4-pixel patches: an 8×8 token grid
and a class token; 4 pre-norm blocks, hidden 48, 4 heads, GELU MLPs) learns which outline
shape (cross, square, triangle, ell) is in an image of textured background and
distractor discs (``kd.datasets.make_shapes``). Writes saved_models/shapes_vit.keras (or
into ``--out_dir``) and prints its held-out accuracy; ``benchmarks/vit_quality.py``
measures how well each method finds the shape.
Run: .venv/bin/python examples/train_vit.py
"""

import argparse
from pathlib import Path

import keras
import keras_hub
from _setup import add_quick_flag, deterministic

import keras_dance as kd


def shapes_vit():
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 1), patch_size=4, num_layers=4, num_heads=4, hidden_dim=48,
        mlp_dim=96, dropout_rate=0.0, attention_dropout=0.0)
    return keras_hub.models.ViTImageClassifier(
        backbone, num_classes=len(kd.datasets.SHAPE_CLASSES), name="shapes_vit")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", default=str(kd.datasets.SAVED_MODELS))
    parser.add_argument("--epochs", type=int, default=30)
    add_quick_flag(parser)
    args = parser.parse_args()
    deterministic(0)
    x, y, _ = kd.datasets.make_shapes(6000, seed=1)
    x_test, y_test, _ = kd.datasets.make_shapes(500, seed=2)
    epochs = args.epochs
    if args.quick:
        x, y, epochs = x[:200], y[:200], 1
    model = shapes_vit()
    schedule = keras.optimizers.schedules.CosineDecay(
        1e-3, decay_steps=epochs * (len(x) // 64 + 1), warmup_target=None)
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    # Trained through a plain functional model sharing the Task's layers: keras_hub's
    # Task.fit turns arrays into a tf.data pipeline (TensorFlow or Grain), which a JAX or
    # PyTorch machine may not have. The batches come in the data's own (random) order,
    # as they did through the Task's pipeline, which does not shuffle arrays.
    plain = keras.Model(model.inputs, model.outputs)
    plain.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"])
    plain.fit(x, y, batch_size=64, epochs=epochs, verbose=0, shuffle=False)
    _, accuracy = plain.evaluate(x_test, y_test, verbose=0)
    path = Path(args.out_dir) / "shapes_vit.keras"
    model.save(path)
    print(f"shapes_vit: held-out accuracy {accuracy:.4f} on {len(y_test)} examples -> {path}")


if __name__ == "__main__":
    main()
