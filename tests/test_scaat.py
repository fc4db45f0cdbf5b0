"""SCAAT: the training step, budgets, β = 0, and the sparsity claim on a toy problem.

Backend-neutral: test_backends.py runs this file under KERAS_BACKEND=jax and torch as well."""

import keras
import numpy as np
import pytest

import keras_dance as kd


def toy_data(count=512, features=16, seed=0):
    """Separable: the label is x0 + x1 > 1; the other features are noise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(count, features)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 1).astype(np.int32)


def toy_model(features=16, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((features,)),
                             keras.layers.Dense(32, activation="relu", name="hidden"),
                             keras.layers.Dense(2, activation="softmax", name="out")])


def compile_(model):
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _count_traces(trainer):
    traces = []
    original = trainer.train_step

    def counting(*args):  # (data) on TensorFlow, (state, data) on JAX
        traces.append(1)  # runs only while the backend traces the step
        return original(*args)

    trainer.train_step = counting
    return traces


@pytest.mark.slow
def test_train_step_traces_once_under_fit_with_validation_and_callbacks(tmp_path):
    x, y = toy_data(256)

    def fit(model, log, epochs):
        return model.fit(x, y, batch_size=32, epochs=epochs, validation_data=(x[:64], y[:64]),
                         callbacks=[keras.callbacks.CSVLogger(str(tmp_path / log))], verbose=0)

    plain = compile_(toy_model())
    plain_traces = _count_traces(plain)
    fit(plain, "plain.csv", 3)
    model = toy_model()
    trainer = compile_(kd.training.SCAAT(model, epsilon=0.1))
    traces = _count_traces(trainer)
    history = fit(trainer, "log.csv", 3)
    # Keras traces a train step the same number of times for a plain model under the same
    # fit (a compiling backend: once, when the step's function is built; PyTorch, eager:
    # once per batch); nothing more is traced in later epochs or fits.
    assert len(traces) == len(plain_traces)
    fit(plain, "plain.csv", 2)
    trainer.fit(x, y, batch_size=32, epochs=2, validation_data=(x[:64], y[:64]), verbose=0)
    assert len(traces) == len(plain_traces)
    assert {"loss", "accuracy", "kl", "val_loss", "val_accuracy"} <= set(history.history)
    assert (tmp_path / "log.csv").read_text().count("\n") == 4
    # The wrapped model is an ordinary Keras model afterwards.
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0),
                               rtol=1e-6)


def test_perturbation_respects_budgets_and_value_range():
    model = kd.datasets.load_digits_model()
    x, y = kd.datasets.load_digits()[2][:6], kd.datasets.load_digits()[3][:6]
    trainer = kd.training.SCAAT(model, epsilon=0.2, gamma=2.0, steps=4)
    x_adv, budget = trainer.perturb(x, y)
    x_adv, budget = keras.ops.convert_to_numpy(x_adv), keras.ops.convert_to_numpy(budget)
    assert np.all(np.abs(x_adv - x) <= budget + 1e-6)
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert budget.max() <= 0.2 + 1e-6 and budget.min() >= 0.0
    # The most salient feature of each input gets (almost) no budget.
    saliency = np.abs(kd.Explainer(model).explain(x, y))
    for s, b in zip(saliency, budget):
        assert b.ravel()[s.argmax()] <= 1e-6
    assert np.abs(x_adv - x).max() > 0.05


def test_beta_zero_equals_plain_training_after_one_step():
    x, y = toy_data(32)
    plain = compile_(toy_model(seed=3))
    keras.utils.set_random_seed(7)
    plain.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    model = toy_model(seed=3)
    trainer = compile_(kd.training.SCAAT(model, beta=0.0))
    keras.utils.set_random_seed(7)
    trainer.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(plain.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_scaat_lowers_the_loss_and_sparsifies_gradient_maps():
    # 2 informative features among 32, 256 training examples: plain training leans on
    # the noise features; SCAAT's budgets let the noise move, so the model learns to
    # ignore it. Measured: Gini 0.57 (plain) vs 0.82 (SCAAT).
    x, y = toy_data(256, features=32)
    x_test, y_test = toy_data(400, features=32, seed=9)
    plain = compile_(toy_model(features=32, seed=1))
    keras.utils.set_random_seed(2)
    plain.fit(x, y, batch_size=32, epochs=40, verbose=0)
    model = toy_model(features=32, seed=1)
    trainer = compile_(kd.training.SCAAT(model, epsilon=0.3, gamma=1.0, beta=2.0, steps=3))
    keras.utils.set_random_seed(2)
    history = trainer.fit(x, y, batch_size=32, epochs=40, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    plain_loss, _ = plain.evaluate(x_test, y_test, verbose=0)
    scaat_loss, accuracy = trainer.evaluate(x_test, y_test, verbose=0)
    assert scaat_loss < plain_loss, (scaat_loss, plain_loss)
    assert accuracy > 0.9
    probe = x_test[:200]
    gini_plain = kd.metrics.sparseness(kd.Explainer(plain).explain(probe)).mean()
    gini_scaat = kd.metrics.sparseness(kd.Explainer(model).explain(probe)).mean()
    assert gini_scaat > gini_plain + 0.1, (gini_scaat, gini_plain)


@pytest.mark.parametrize("kwargs, message", [
    (dict(epsilon=-0.1), "epsilon"), (dict(epsilon=0.0), "epsilon"), (dict(gamma=-1.0), "gamma"),
    (dict(beta=-1.0), "beta"), (dict(steps=0), "steps"), (dict(step_size=0.0), "step_size"),
    (dict(value_range=(1.0, 0.0)), "value_range"), (dict(method="nope"), "method"),
])
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kd.training.SCAAT(toy_model(), **kwargs)
