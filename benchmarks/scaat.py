"""Standard versus SCAAT training of the digits CNN: same architecture, data, seed, epochs.

Prints held-out accuracy, Gini sparseness of gradient maps, deletion AUC of gradient maps
and training time per epoch, side by side from one run. The claim to check (PAPERS.md
§3): sparser and more faithful maps at an accuracy within 1 point.

Run: .venv/bin/python benchmarks/scaat.py [--epochs 30] [--probe 200]
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import numpy as np  # noqa: E402
from train_scaat_digits import SCAAT_SETTINGS, train  # noqa: E402

import keras_dance as kd  # noqa: E402


def evaluate(model, probe):
    _, _, x_test, y_test = kd.datasets.load_digits()
    accuracy = float(np.mean(np.argmax(model.predict(x_test, verbose=0), 1) == y_test))
    x, y = x_test[:probe], y_test[:probe]
    maps = kd.Explainer(model).explain(x, y)
    return (accuracy, kd.metrics.sparseness(maps), kd.metrics.deletion(model, x, maps, y))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--probe", type=int, default=200)
    args = parser.parse_args()
    rows = {}
    for name, scaat in (("standard", False), ("SCAAT", True)):
        model, seconds = train(scaat=scaat, epochs=args.epochs)
        rows[name] = evaluate(model, args.probe) + (seconds,)
    print(f"digits CNN, {args.epochs} epochs, seed 0, Adam 2e-3, batch 32; SCAAT "
          + ", ".join(f"{k}={v}" for k, v in SCAAT_SETTINGS.items())
          + f"; maps: gradient, {args.probe} held-out digits, true labels")
    print(f"{'training':<10}{'accuracy':>10}{'Gini':>16}{'deletion AUC':>18}{'s/epoch':>10}")
    for name, (accuracy, gini, auc, seconds) in rows.items():
        print(f"{name:<10}{accuracy:10.4f}{gini.mean():9.4f} ± {gini.std(ddof=1) / np.sqrt(len(gini)):.4f}"
              f"{auc.mean():11.4f} ± {auc.std(ddof=1) / np.sqrt(len(auc)):.4f}{seconds:10.2f}")
    (a0, g0, d0, s0), (a1, g1, d1, s1) = rows["standard"], rows["SCAAT"]
    print(f"accuracy change {100 * (a1 - a0):+.2f} points; Gini {g1.mean() - g0.mean():+.4f}; "
          f"deletion AUC {d1.mean() - d0.mean():+.4f} (lower is more faithful); "
          f"time per epoch ×{s1 / s0:.1f}")


if __name__ == "__main__":
    main()
