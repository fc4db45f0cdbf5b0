"""The project's report card: the DANCE and CGI papers' experiments on our shipped models.

Writes docs/quality.md (and docs/quality_*.png) from one run:
  1. fidelity and deletion ablation on the digits CNN: no decoys / decoys + range /
     constant perturbation + range / decoys + mean, for gradient, SmoothGrad and IG;
  2. sensitivity under the three interpretation attacks, base versus decoy-enhanced;
  3. sanity checks (cascading randomisation, random labels) for gradient, Gradient⊙Input,
     CGI and DANCE;
  4. localisation on the shapes (image) and motifs (sequence) tasks for every method;
  5. SCAAT against standard training of the digits CNN (accuracy, sparseness, deletion);
and the settings, sample counts, seed and run time. The findings are written from the
numbers by this script.

Run: .venv/bin/python benchmarks/quality.py            (full, about 15 minutes on 2 cores)
     .venv/bin/python benchmarks/quality.py --quick --out /tmp/quality.md   (a smoke run)
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sections import fmt, marked_sections, mean_se  # noqa: E402

import keras_dance as kd  # noqa: E402
from keras_dance import attacks, sanity  # noqa: E402

SEED = 0


def base_methods(settings):
    return {
        "gradient": kd.methods.Gradient(),
        "smoothgrad": kd.methods.SmoothGrad(num_samples=settings["samples"], seed=SEED),
        "integrated_gradients": kd.methods.IntegratedGradients(steps=settings["steps"]),
    }


def ablation(settings, lines, findings):
    model = kd.datasets.load_digits_model()
    x = kd.datasets.load_digits()[2][:settings["images"]]
    targets = kd.Explainer(model).predict_classes(x)
    decoys = dict(layer="conv2", patch=4, steps=settings["decoy_steps"], seed=SEED)
    variants = {
        "no decoys": dict(decoys=None),
        "decoys + range": dict(decoys=kd.DecoyConfig(**decoys), aggregation="range"),
        "constant + range": dict(decoys=kd.DecoyConfig(kind="constant", **decoys),
                                 aggregation="range"),
        "decoys + mean": dict(decoys=kd.DecoyConfig(**decoys), aggregation="mean"),
    }
    lines += ["## 1. Fidelity and deletion: the DANCE ablation (digits CNN)", "",
              f"{len(x)} held-out digits, predicted class, layer `conv2`, patch 4, "
              f"{settings['decoy_steps']} solver steps. Fidelity: −log(F^c(Ẽ∘x)/F^c(Ē∘x)) "
              "(our reading of the paper; 0 for a constant map), deletion AUC; lower is "
              "better for both. Mean ± standard error over images.", "",
              "| base | variant | fidelity | deletion AUC |", "|---|---|---:|---:|"]
    results = {}
    for base_name, method in base_methods(settings).items():
        for variant, kwargs in variants.items():
            maps = kd.Explainer(model, method, **kwargs).explain(x, targets)
            fid = kd.metrics.fidelity(model, x, maps, targets)
            dele = kd.metrics.deletion(model, x, maps, targets)
            results[base_name, variant] = (np.mean(fid), np.mean(dele))
            lines.append(f"| {base_name} | {variant} | {fmt(fid)} | {fmt(dele)} |")
            print(lines[-1], flush=True)
    lines.append("")
    for base_name in base_methods(settings):
        plain, dance = results[base_name, "no decoys"], results[base_name, "decoys + range"]
        best = min(variants, key=lambda v: results[base_name, v][1])
        findings.append(
            f"Fidelity ({base_name}): decoys + range {'improves on' if dance[0] < plain[0] else 'does not improve on'} "
            f"the plain map ({dance[0]:.3f} vs {plain[0]:.3f}); deletion: "
            f"{'better' if dance[1] < plain[1] else 'worse'} ({dance[1]:.3f} vs {plain[1]:.3f}); "
            f"the lowest deletion AUC is \"{best}\".")
    return model, x, targets


def robustness(settings, model, x, targets, lines, findings):
    x, targets = x[:settings["attack_images"]], targets[:settings["attack_images"]]
    decoys = kd.DecoyConfig(layer="conv2", patch=4, steps=settings["decoy_steps"], seed=SEED)
    lines += ["## 2. Sensitivity under interpretation attacks (digits CNN)", "",
              f"{len(x)} digits; L∞ budget 8/255, step 1/255, {settings['iterations']} "
              "iterations, attack gradient through a softplus copy (β = 10) of the base "
              "map, label-changing steps rejected, best of every "
              f"{settings['check_every']} steps kept. For decoy-enhanced maps the attack "
              "is crafted on the base map and measured on the DANCE map (a transfer "
              "attack). Sensitivity ‖P(E(x)) − P(E(x̂))‖₂/‖x − x̂‖₂ and Spearman rank "
              "correlation of the post-processed maps; lower sensitivity and higher "
              "correlation mean more robust.", "",
              "| base | attack | sensitivity: base | sensitivity: DANCE | Spearman: base | Spearman: DANCE |",
              "|---|---|---:|---:|---:|---:|"]
    wins, rank_wins, total = 0, 0, 0
    for base_name, method in base_methods({**settings, "samples": settings["attack_samples"],
                                           "steps": settings["attack_steps"]}).items():
        plain = kd.Explainer(model, method)
        dance = kd.Explainer(model, method, decoys=decoys)
        for kind in attacks.KINDS:
            common = dict(kind=kind, iterations=settings["iterations"],
                          check_every=settings["check_every"], targets=targets)
            a = attacks.attack(plain, x, **common)
            b = attacks.attack(dance, x, **common)
            lines.append(f"| {base_name} | {kind} | {fmt(a.sensitivity)} | {fmt(b.sensitivity)} | "
                         f"{fmt(a.spearman)} | {fmt(b.spearman)} |")
            print(lines[-1], flush=True)
            total += 1
            wins += mean_se(b.sensitivity)[0] < mean_se(a.sensitivity)[0]
            rank_wins += mean_se(b.spearman)[0] > mean_se(a.spearman)[0]
    lines.append("")
    findings.append(f"Robustness: the decoy-enhanced map has the lower sensitivity in {wins} of "
                    f"{total} (base, attack) pairs and the higher rank correlation with its "
                    f"unattacked map in {rank_wins} of {total}; the paper reports lower "
                    "sensitivity for all. The two measures disagree because sensitivity divides "
                    "by the size of the perturbation each attack ended with.")


def sanity_checks(settings, model, x, targets, lines, findings):
    x, targets = x[:settings["sanity_images"]], targets[:settings["sanity_images"]]
    methods = {
        "gradient": kd.Explainer(model, "gradient"),
        "gradient_x_input": kd.Explainer(model, "gradient_x_input"),
        "cgi": kd.Explainer(model, "cgi"),
        # Adebayo et al.'s negative control: its maps should survive randomisation.
        "guided_backprop (negative control)": kd.Explainer(model, "guided_backprop"),
        "DANCE(gradient)": kd.Explainer(model, decoys=kd.DecoyConfig(
            layer="conv2", patch=4, steps=settings["decoy_steps"], seed=SEED)),
    }
    x_train, y_train, _, _ = kd.datasets.load_digits()
    random_model = sanity.train_on_random_labels(model, x_train, y_train,
                                                 epochs=settings["random_label_epochs"],
                                                 seed=SEED)
    lines += ["## 3. Sanity checks (digits CNN)", "",
              f"{len(x)} digits. Cascading model-parameter randomisation: layers "
              "re-initialised from the top down, cumulatively. Random labels: the same "
              f"architecture trained for {settings['random_label_epochs']} epochs on "
              "permuted labels. Cells: similarity to the trained model's maps (Spearman of "
              "absolute maps / SSIM). A method passes when the similarity falls "
              "(`kd.sanity.passes`: Spearman < 0.5).", "",
              "| method | " + " | ".join(["predictions", "fc", "conv3", "conv2", "conv1"])
              + " | random labels |",
              "|---|" + "---:|" * 6]
    verdicts = {}
    for name, explainer in methods.items():
        results = sanity.model_randomisation(explainer, x, targets, seed=SEED)
        summary = sanity.summarise(results)
        labels = sanity.random_label_check(explainer, random_model, x, targets)
        cells = [f"{r['spearman_abs']:.2f} / {r['ssim']:.2f}" for r in summary]
        cells.append(f"{np.nanmean(labels['spearman_abs']):.2f} / {np.nanmean(labels['ssim']):.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
        verdicts[name] = (sanity.passes(results), sanity.passes(labels),
                          summary[-1]["spearman_abs"], np.nanmean(labels["spearman_abs"]))
    lines.append("")
    findings.append(
        "Sanity: " + "; ".join(
            f"{n} {'passes' if a else 'fails'} randomisation ({c:.2f}) and "
            f"{'passes' if b else 'fails'} random labels ({d:.2f})"
            for n, (a, b, c, d) in verdicts.items())
        + " (Spearman of absolute maps; < 0.5 passes). The CGI paper's claim that CGI passes "
        f"where Gradient⊙Input fails {'holds' if verdicts['cgi'][0] and not verdicts['gradient_x_input'][0] else 'does not hold'} "
        "for randomisation here.")


def localisation(settings, lines, findings):
    lines += ["## 4. Localisation on tasks with ground truth", "",
              "Relevance mass inside the true region (1 is perfect; a uniform map scores the "
              "region's area) and the pointing game (share of maps whose maximum is inside).",
              ""]
    tasks = {
        "shapes (image)": ("shapes_cnn", kd.datasets.make_shapes(settings["task_images"], seed=7),
                           dict(layer="conv2", patch=4)),
        "motifs (sequence)": ("motifs_cnn", kd.datasets.make_motifs(4 * settings["task_images"],
                                                                     seed=7),
                              dict(layer="conv1", patch=3)),
    }
    for title, (name, (x, y, masks), decoy_settings) in tasks.items():
        model = kd.datasets.load_model(name)
        if name == "motifs_cnn":  # explain the positives: both motifs matter there
            keep = y == 1
            x, y, masks = x[keep], y[keep], masks[keep]
        area = masks.reshape(len(masks), -1).mean()
        methods = {
            "gradient": dict(method="gradient"),
            "gradient_x_input": dict(method="gradient_x_input"),
            "integrated_gradients": dict(method=kd.methods.IntegratedGradients(steps=settings["steps"])),
            "smoothgrad": dict(method=kd.methods.SmoothGrad(num_samples=settings["samples"], seed=SEED)),
            "cgi": dict(method="cgi"),
            "DANCE(gradient)": dict(method="gradient", decoys=kd.DecoyConfig(
                steps=settings["decoy_steps"], seed=SEED, **decoy_settings)),
            "DANCE(gradient_x_input)": dict(method="gradient_x_input", decoys=kd.DecoyConfig(
                steps=settings["decoy_steps"], seed=SEED, **decoy_settings)),
        }
        lines += [f"**{title}**: {len(x)} examples (labels as targets), true region "
                  f"{area:.1%} of the positions.", "",
                  "| method | relevance mass | pointing game |", "|---|---:|---:|"]
        scores = {}
        for method_name, kwargs in methods.items():
            maps = kd.Explainer(model, **kwargs).explain(x, y)
            mass = kd.metrics.relevance_mass(maps, masks)
            hits = kd.metrics.pointing_game(maps, masks)
            scores[method_name] = float(mass.mean())
            lines.append(f"| {method_name} | {fmt(mass)} | {hits.mean():.2f} |")
            print(lines[-1], flush=True)
        lines.append("")
        best = max(scores, key=scores.get)
        findings.append(f"Localisation, {title}: best relevance mass {best} ({scores[best]:.3f}); "
                        f"DANCE(gradient) {scores['DANCE(gradient)']:.3f} vs gradient "
                        f"{scores['gradient']:.3f}; uniform would be {area:.3f}.")


def scaat_section(settings, lines, findings):
    _, _, x_test, y_test = kd.datasets.load_digits()
    x, y = x_test[:settings["scaat_images"]], y_test[:settings["scaat_images"]]
    lines += ["## 5. SCAAT (digits CNN)", "",
              "The shipped `digits_cnn.keras` (standard training) against "
              "`digits_cnn_scaat.keras` (SCAAT, `examples/train_scaat_digits.py`): same "
              "architecture, data, seed, optimiser and 30 epochs. Accuracy on all "
              f"{len(y_test)} held-out digits; gradient maps of {len(x)} of them for their "
              "labels. SCAAT is our reconstruction of the paper (PAPERS.md §3). "
              "`benchmarks/scaat.py` retrains both and also times an epoch.", "",
              "| training | accuracy | Gini sparseness (higher: sparser) | deletion AUC (lower: more faithful) |",
              "|---|---:|---:|---:|"]
    values = {}
    for name, file in (("standard", "digits_cnn"), ("SCAAT", "digits_cnn_scaat")):
        model = kd.datasets.load_model(file)
        accuracy = float(np.mean(np.argmax(model.predict(x_test, verbose=0), 1) == y_test))
        maps = kd.Explainer(model).explain(x, y)
        gini, auc = kd.metrics.sparseness(maps), kd.metrics.deletion(model, x, maps, y)
        values[name] = (accuracy, gini.mean(), auc.mean())
        lines.append(f"| {name} | {accuracy:.4f} | {fmt(gini)} | {fmt(auc)} |")
        print(lines[-1], flush=True)
    lines.append("")
    (a0, g0, d0), (a1, g1, d1) = values["standard"], values["SCAAT"]
    findings.append(
        f"SCAAT: accuracy {100 * (a1 - a0):+.2f} points ({'within' if abs(a1 - a0) <= 0.01 else 'outside'} "
        f"1 point); gradient maps {'sparser' if g1 > g0 else 'not sparser'} (Gini {g0:.3f} → {g1:.3f}); "
        f"deletion AUC {d0:.3f} → {d1:.3f}, so {'more' if d1 < d0 else 'not more'} faithful by "
        "this metric — the paper's claim holds for sparseness"
        + (" and faithfulness." if d1 < d0 else " but not for faithfulness here."))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sample counts (smoke test)")
    parser.add_argument("--out", default="docs/quality.md")
    args = parser.parse_args()
    settings = dict(images=32, attack_images=6, sanity_images=8, task_images=24, samples=50,
                    steps=50, attack_samples=10, attack_steps=10, decoy_steps=60,
                    iterations=30, check_every=10, scaat_images=200, random_label_epochs=10)
    if args.quick:
        settings = dict(images=2, attack_images=1, sanity_images=1, task_images=2, samples=3,
                        steps=3, attack_samples=2, attack_steps=2, decoy_steps=3,
                        iterations=2, check_every=1, scaat_images=4, random_label_epochs=1)
    start = time.time()
    lines, findings = [], []
    model, x, targets = ablation(settings, lines, findings)
    robustness(settings, model, x, targets, lines, findings)
    sanity_checks(settings, model, x, targets, lines, findings)
    localisation(settings, lines, findings)
    scaat_section(settings, lines, findings)
    seconds = time.time() - start
    header = [
        "# Quality report", "",
        f"Generated by `benchmarks/quality.py{' --quick' if args.quick else ''}` in "
        f"{seconds / 60:.1f} minutes on {os.cpu_count()} CPU cores; seed {SEED}. Models: "
        "`saved_models/` (digits CNN and its SCAAT twin, shapes CNN, motifs CNN). Settings: "
        + ", ".join(f"{k}={v}" for k, v in settings.items()) + ".", "",
        "## What the numbers show", "",
    ] + [f"- {f}" for f in findings] + [""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Marked sections belong to other scripts (dance_sweep.py, text_quality.py): kept.
    previous = out.read_text() if out.exists() else ""
    lines += [f"{section}\n" for section in marked_sections(previous)]
    temporary = out.with_suffix(".tmp")
    temporary.write_text("\n".join(header + lines) + "\n")
    os.replace(temporary, out)
    print(f"wrote {out} in {seconds:.0f} s")


if __name__ == "__main__":
    main()
