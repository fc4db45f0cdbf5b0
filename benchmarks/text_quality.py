"""The quality report's text section: every method on the shipped text CNN.

``saved_models/text_cnn.keras`` (a Kim CNN, ``examples/train_text.py``) on held-out
sentences of ``kd.datasets.make_sentiment`` (negation scope decides the label), labels as
targets. Per method: relevance mass and pointing game on the deciding words (the
sentiment word and its in-scope negator), word-deletion and insertion AUC (words replaced
by the padding token), and the time per sentence with its ratio to the plain gradient,
measured side by side in this run. DANCE ablations as in the paper's Fig. 2C: decoys +
range, decoys + patch_range, decoys + mean, constant (mean-embedding) decoys + range, at
two decoy layers. Writes the ``text_quality`` section of docs/quality.md.

Run: .venv/bin/python benchmarks/text_quality.py            (about 3 minutes on 2 cores)
     .venv/bin/python benchmarks/text_quality.py --quick --out /tmp/q.md
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _sections import fmt, write_section  # noqa: E402

import keras_dance as kd  # noqa: E402

SEED = 0


def methods(settings):
    def dance(layer, aggregation="range", kind="optimized", method="gradient"):
        return dict(method=method, aggregation=aggregation, decoys=kd.DecoyConfig(
            layer=layer, patch=1, kind=kind, steps=settings["decoy_steps"], seed=SEED))

    ig = kd.methods.IntegratedGradients(steps=settings["ig_steps"])
    out = {
        "gradient": dict(method="gradient"),
        "gradient_x_input": dict(method="gradient_x_input"),
        "integrated_gradients": dict(method=ig),
        "smoothgrad": dict(method=kd.methods.SmoothGrad(num_samples=settings["samples"],
                                                        seed=SEED)),
        "cgi": dict(method="cgi"),
    }
    for layer in ("conv3", "features"):
        out[f"DANCE(gradient) {layer}: decoys + range"] = dance(layer)
        out[f"DANCE(gradient) {layer}: decoys + patch_range"] = dance(layer, "patch_range")
        out[f"DANCE(gradient) {layer}: decoys + mean"] = dance(layer, "mean")
        out[f"DANCE(gradient) {layer}: constant + range"] = dance(layer, kind="constant")
    out["DANCE(integrated_gradients) features: decoys + range"] = dance("features", method=ig)
    out["DANCE(integrated_gradients) features: decoys + patch_range"] = dance(
        "features", "patch_range", method=ig)
    return out


def plot_curves(results, fractions, path):
    """Mean word-deletion curves of the plain methods and the conv3 ablations (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, r in results.items():
        if name.startswith("DANCE") and "conv3" not in name:
            continue
        style = "--" if name.startswith("DANCE") else "-"
        ax.plot(fractions, r["curve"], style, label=name.replace("DANCE(gradient) conv3: ", "DANCE: "))
    ax.set_xlabel("fraction of words deleted (by score)")
    ax.set_ylabel("p(label)")
    ax.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    temporary = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temporary, dpi=110)
    plt.close(figure)
    os.replace(temporary, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts (smoke test)")
    parser.add_argument("--out", default="docs/quality.md")
    args = parser.parse_args()
    settings = dict(sentences=48, ig_steps=32, samples=16, decoy_steps=60)
    if args.quick:
        settings = dict(sentences=3, ig_steps=2, samples=2, decoy_steps=2)
    start = time.time()
    model, vocabulary = kd.datasets.load_text_model()
    x, y, masks = kd.datasets.make_sentiment(settings["sentences"], seed=12)
    negated = np.array([any(vocabulary[t] in kd.datasets.NEGATORS for t in row[m])
                        for row, m in zip(x, masks)])
    rows, results = [], {}
    for name, kwargs in methods(settings).items():
        explainer = kd.Explainer(model, pad_id=0, **kwargs)
        explainer.explain(x[:1], y[:1])  # compiled before timing
        begin = time.perf_counter()
        maps = explainer.explain(x, y)
        seconds = (time.perf_counter() - begin) / len(x)
        mass = kd.metrics.relevance_mass(maps, masks)
        deletion, curves, fractions = kd.metrics.deletion(model, x, maps, y, baseline=0,
                                                          steps=16, return_curves=True)
        results[name] = dict(
            mass=mass, negated=mass[negated], seconds=seconds, curve=curves.mean(0),
            pointing=kd.metrics.pointing_game(maps, masks).mean(), deletion=deletion,
            insertion=kd.metrics.insertion(model, x, maps, y, baseline=0, steps=16))
        print(name, f"{mass.mean():.3f}", f"{seconds * 1000:.1f} ms", flush=True)
    base = results["gradient"]["seconds"]
    for name, r in results.items():
        rows.append(f"| {name} | {fmt(r['mass'])} | {fmt(r['negated']) if len(r['negated']) else '—'} "
                    f"| {r['pointing']:.2f} | {fmt(r['deletion'])} | {fmt(r['insertion'])} | "
                    f"{r['seconds'] * 1000:.1f} | {r['seconds'] / base:.1f}× |")
    area = float(masks[x != 0].mean())
    plain = max(("gradient", "gradient_x_input", "integrated_gradients", "smoothgrad", "cgi"),
                key=lambda n: results[n]["mass"].mean())
    dances = [n for n in results if n.startswith("DANCE")]
    best = max(dances, key=lambda n: results[n]["mass"].mean())
    pairs = [(layer, results[f"DANCE(gradient) {layer}: decoys + range"]["mass"].mean(),
              results[f"DANCE(gradient) {layer}: decoys + patch_range"]["mass"].mean())
             for layer in ("conv3", "features")]
    findings = [
        f"Best localisation: {plain} among plain methods ({results[plain]['mass'].mean():.3f}); "
        f"{best} among DANCE settings ({results[best]['mass'].mean():.3f}); the plain "
        f"gradient {results['gradient']['mass'].mean():.3f}; a uniform map scores {area:.3f}.",
        "range vs patch_range (DANCE(gradient), relevance mass): " + "; ".join(
            f"{layer}: {a:.3f} vs {b:.3f}" for layer, a, b in pairs) + ". For text use "
        + ("`patch_range`" if sum(b > a for _, a, b in pairs) == len(pairs) else
           "`range`" if sum(a > b for _, a, b in pairs) == len(pairs) else
           "either (they split by layer)")
        + " — and prefer the plain method it wraps unless DANCE's row beats it above.",
    ]
    figure_path = Path(args.out).with_name("quality_text_deletion.png")
    plot_curves(results, fractions, figure_path)
    seconds = time.time() - start
    lines = ["", "## 6. Text: the Kim CNN on negation-scope sentiment", "",
             f"Generated by `benchmarks/text_quality.py{' --quick' if args.quick else ''}` in "
             f"{seconds / 60:.1f} minutes on {os.cpu_count()} CPU cores ({platform.machine()}); "
             f"seed {SEED}. Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items())
             + ". `saved_models/text_cnn.keras` on held-out `make_sentiment` sentences (seed "
             "12), labels as targets; maps per token (`token_reduction=\"mean\"`, the "
             "paper's), padding scored 0. Relevance mass and pointing game on the deciding "
             "words (the sentiment word and its in-scope negator); the same on the sentences "
             "whose label needs a negator; word deletion/insertion AUC with words replaced by "
             "the padding token (deletion: lower is better; insertion: higher). DANCE: one "
             "word per patch (`patch=1`), at a convolution (`conv3`) or at the pooled "
             "features (`features`); constant decoys use the mean embedding. Time per "
             "sentence and its ratio to the plain gradient, measured in this run.", "",
             "| method | relevance mass | … negated sentences | pointing game | word deletion AUC | word insertion AUC | ms / sentence | × gradient |",
             "|---|---:|---:|---:|---:|---:|---:|---:|", *rows, "",
             f"![Word-deletion curves]({figure_path.name})", "",
             "Word-deletion curves: the mean probability of the label as the highest-scoring "
             "words are replaced by padding, for the plain methods and the DANCE(gradient) "
             "ablations at `conv3`.", "",
             *[f"- {f}" for f in findings], ""]
    write_section(args.out, "text_quality", lines)
    print(f"wrote {args.out} in {seconds:.0f} s")


if __name__ == "__main__":
    main()
