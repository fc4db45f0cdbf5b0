"""Interpretation attacks, sanity checks and the ground-truth generators."""

import numpy as np
import pytest
from helpers import small_conv_model

import keras_dance as kd
from keras_dance import attacks, sanity


@pytest.fixture(scope="module")
def digits():
    model = kd.datasets.load_digits_model()
    x = kd.datasets.load_digits()[2][:3]
    return model, x


@pytest.mark.parametrize("kind", attacks.KINDS)
def test_attacks_respect_budget_range_and_label_and_move_the_map(digits, kind):
    model, x = digits
    explainer = kd.Explainer(model, "gradient")
    result = attacks.attack(explainer, x, kind=kind, iterations=20, check_every=5)
    assert np.abs(result.x_adv - x).max() <= 8 / 255 + 1e-6
    assert result.x_adv.min() >= 0.0 and result.x_adv.max() <= 1.0
    assert result.label_kept.all()
    np.testing.assert_array_equal(explainer.predict_classes(result.x_adv),
                                  explainer.predict_classes(x))
    # The plain gradient of a small ReLU CNN is fragile: the map measurably moves.
    assert np.nanmean(result.spearman) < 0.95
    if kind == "topk":
        assert result.topk_intersection.mean() < 0.9


@pytest.mark.slow
def test_attack_transfers_to_a_decoy_explainer(digits):
    model, x = digits
    explainer = kd.Explainer(model, decoys=kd.DecoyConfig(layer="conv2", patch=8, steps=10))
    result = attacks.attack(explainer, x[:1], iterations=4, check_every=2)
    assert result.label_kept.all() and np.abs(result.x_adv - x[:1]).max() <= 8 / 255 + 1e-6


def test_softplus_copy_leaves_the_model_and_approximates_it(digits):
    model, x = digits
    before = [w.copy() for w in model.get_weights()]
    smooth = attacks.softplus_copy(model, beta=50.0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.get_layer("conv1").activation.__name__ == "relu"
    np.testing.assert_array_equal(np.argmax(smooth(x), 1), np.argmax(model(x), 1))


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="nope"), "kind"),
    (dict(epsilon=0.0), "epsilon"),
    (dict(step_size=-1.0), "step_size"),
    (dict(iterations=0), "iterations"),
    (dict(region=np.ones((3, 3), bool)), "region"),
])
def test_attack_bad_input(digits, kwargs, message):
    model, x = digits
    with pytest.raises(ValueError, match=message):
        attacks.attack(kd.Explainer(model), x[:1], **kwargs)


@pytest.mark.slow
def test_cascading_randomisation_drives_gradient_correlation_down(digits):
    model, x = digits
    before = [w.copy() for w in model.get_weights()]
    results = sanity.summarise(sanity.model_randomisation(kd.Explainer(model), x))
    assert [r["layer"] for r in results] == ["predictions", "fc", "conv3", "conv2", "conv1"]
    # Fully randomised, the gradient map no longer tracks the trained one.
    assert results[-1]["spearman_abs"] < 0.5
    assert results[-1]["spearman_abs"] < results[0]["spearman_abs"] or results[0]["spearman_abs"] < 0.5
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    independent = sanity.summarise(sanity.model_randomisation(kd.Explainer(model), x[:1],
                                                              mode="independent"))
    assert len(independent) == 5 and all(np.isfinite(r["spearman_signed"]) for r in independent)
    # "full" is the cascade's last step in one explanation (same seeds, same copy).
    full = sanity.summarise(sanity.model_randomisation(kd.Explainer(model), x, mode="full"))
    assert [r["layer"] for r in full] == ["all"]
    np.testing.assert_allclose(full[0]["spearman_abs"], results[-1]["spearman_abs"], rtol=1e-6)
    with pytest.raises(ValueError, match="mode"):
        sanity.model_randomisation(kd.Explainer(model), x, mode="top")


@pytest.mark.slow
def test_random_label_check_compares_two_models(digits):
    model, x = digits
    same = sanity.random_label_check(kd.Explainer(model), model, x)
    np.testing.assert_allclose(same["spearman_abs"], 1.0, rtol=1e-5)
    np.testing.assert_allclose(same["ssim"], 1.0, rtol=1e-4)
    assert not sanity.passes(same)
    before = [w.copy() for w in model.get_weights()]
    x_train, y_train, _, _ = kd.datasets.load_digits()
    random = sanity.train_on_random_labels(model, x_train[:256], y_train[:256], epochs=3)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    changed = sanity.random_label_check(kd.Explainer(model), random, x)
    assert sanity.passes(changed), changed["spearman_abs"]


def test_generators_are_deterministic_and_masks_match():
    a = kd.datasets.make_shapes(8, seed=3)
    b = kd.datasets.make_shapes(8, seed=3)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    images, labels, masks = a
    assert images.shape == (8, 32, 32, 1) and masks.shape == (8, 32, 32)
    for image, label, mask in zip(images, labels, masks):
        # The mask is exactly the drawn shape: the class stamp at its place, at 0.9.
        np.testing.assert_allclose(image[..., 0][mask], 0.9)
        rows, cols = np.nonzero(mask)
        stamp = kd.datasets._stamp(kd.datasets.SHAPE_CLASSES[label], 7)
        box = mask[rows.min():rows.min() + 7, cols.min():cols.min() + 7]
        assert stamp.sum() == mask.sum() and box.sum() == stamp.sum()
    x, y, m = kd.datasets.make_motifs(30, seed=5)
    x2, y2, m2 = kd.datasets.make_motifs(30, seed=5)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(m, m2)
    letters = np.array(list("ACGT"))
    for seq, label, mask in zip(x, y, m):
        text = "".join(letters[seq.argmax(-1)])
        np.testing.assert_array_equal(seq.sum(-1), 1.0)
        has = [motif in text for motif in kd.datasets.MOTIFS]
        if label == 1:
            assert all(has) and mask.sum() == 12
        assert "".join(letters[seq.argmax(-1)][mask]) in (
            "", kd.datasets.MOTIFS[0], kd.datasets.MOTIFS[1],
            kd.datasets.MOTIFS[0] + kd.datasets.MOTIFS[1], kd.datasets.MOTIFS[1] + kd.datasets.MOTIFS[0])


@pytest.mark.parametrize("call, error, message", [
    (lambda e, m, x: kd.attacks.attack(m, x, iterations=1), TypeError, "kd.Explainer"),
    (lambda e, m, x: kd.attacks.attack(e, x, epsilon="a", iterations=1), ValueError, "epsilon"),
    (lambda e, m, x: kd.attacks.attack(e, x, value_range=None, iterations=1), ValueError,
     "value_range"),
    (lambda e, m, x: kd.sanity.model_randomisation(e, x, seed="a"), ValueError, "seed"),
    (lambda e, m, x: kd.sanity.passes({"ssim": 1.0}), ValueError, "spearman_abs"),
    (lambda e, m, x: kd.sanity.passes({"spearman_abs": [0.1]}, threshold="x"), ValueError,
     "threshold"),
    (lambda e, m, x: kd.sanity.train_on_random_labels(m, x, [0, 1, 2], epochs=1), ValueError,
     "one label per input"),
    (lambda e, m, x: kd.sanity.train_on_random_labels(m, x, [0, 1], epochs=0), ValueError,
     "epochs"),
    (lambda e, m, x: kd.callbacks.ExplanationCallback(e, x, max_images=-1), ValueError,
     "max_images"),
    (lambda e, m, x: kd.methods.IntegratedGradients(baseline="a"), TypeError, "baseline"),
    (lambda e, m, x: kd.methods.SmoothGrad(noise_level="a"), ValueError, "noise_level"),
    (lambda e, m, x: kd.training.SCAAT(m, steps=2**40), ValueError, "steps"),
    (lambda e, m, x: kd.training.SCAAT(m, gamma="a"), ValueError, "gamma"),
])
def test_evidence_and_training_entry_points_validate_at_the_door(call, error, message):
    model = small_conv_model()
    explainer = kd.Explainer(model)
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 2)).astype(np.float32)
    with pytest.raises(error, match=message):
        call(explainer, model, x)
