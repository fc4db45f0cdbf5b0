"""SCAAT: saliency-constrained adaptive adversarial training (Xu et al., BMVC 2023).

A reconstruction: the paper states the idea (adversarial samples built under the
guidance of the saliency map make maps sparser and more faithful without losing
accuracy); its details were not available to us. Our step, per batch, inside the
compiled ``train_step`` (docs/papers.md §3):

1. ``S``: a fast saliency map of the label (the ``method``, on logits), ``|E|`` scaled
   per sample to [0, 1];
2. per-feature budgets ``ε_i = ε · (hi − lo) · (1 − S_i)^γ`` — salient features may barely
   move, the rest may move up to ``ε``;
3. ``steps`` projected sign-gradient steps of size ``step_size · ε · (hi − lo)`` from a
   random start that maximise ``KL(f(x) ‖ f(x + δ))`` within the budgets and the value
   range;
4. loss ``L(y, f(x)) + β · KL(f(x) ‖ f(x + δ))`` with the compiled loss ``L``.

The model learns to ignore features the map calls unimportant, so their gradients shrink.
"""

import keras
import numpy as np
from keras import ops

from keras_dance import backend
from keras_dance._logits import LogitsModel, needs_linear_copy
from keras_dance._targets import IndexTargets
from keras_dance.methods import get as get_method
from keras_dance.model_view import ModelFunction


def _check(name, value, minimum, strict):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or (
            not np.isfinite(value)) or (
            value <= minimum if strict else value < minimum):
        sign = ">" if strict else ">="
        raise ValueError(f"Expected `{name}` {sign} {minimum}. Received: {name}={value!r}")
    return float(value)


class SCAAT(keras.Model):
    """Wraps a classifier so that ``compile``/``fit`` train it with SCAAT.

    The wrapped ``model`` is trained in place and stays an ordinary Keras model (save and
    load it as usual); the wrapper adds only the training step. Any optimiser, label loss
    (its output must be probabilities — softmax/sigmoid — or ``from_logits=True`` logits,
    as the model produces), metrics and callbacks work.

    Args:
        model: a built Keras classifier with one input and class outputs ``(B, C)``.
        epsilon: the largest per-feature budget, as a fraction of the value range (> 0).
            Defaults to 0.1.
        gamma: how fast the budget shrinks with saliency (>= 0; 0: uniform budgets).
            Defaults to 1.0.
        steps: adversarial steps per batch (>= 1). Defaults to 3.
        step_size: step as a fraction of ε (> 0). Defaults to 0.5.
        beta: weight of the KL term (>= 0; 0: plain training). Defaults to 1.0.
        method: the saliency method of step 1 (a name or a ``kd.methods`` instance).
            Defaults to "gradient".
        value_range: the input box. Defaults to (0.0, 1.0).
        seed: seed of the random starts. Defaults to 0.

    Example:
        >>> trainer = kd.training.SCAAT(model, epsilon=0.1, beta=1.0)
        >>> trainer.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
        ...                 metrics=["accuracy"])
        >>> trainer.fit(x, y, epochs=5, validation_data=(x_val, y_val))
        >>> model.save("model.keras")   # an ordinary model
    """

    def __init__(self, model, epsilon=0.1, gamma=1.0, steps=3, step_size=0.5, beta=1.0,
                 method="gradient", value_range=(0.0, 1.0), seed=0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(model, keras.Model) or not model.built or len(model.inputs or []) != 1:
            raise TypeError(f"Expected a built keras.Model with one input. Received: model={model!r}")
        self.epsilon = _check("epsilon", epsilon, 0, strict=True)
        self.gamma = _check("gamma", gamma, 0, strict=False)
        self.beta = _check("beta", beta, 0, strict=False)
        self.step_size = _check("step_size", step_size, 0, strict=True)
        if (isinstance(steps, bool) or not isinstance(steps, (int, np.integer))
                or not 1 <= steps <= 2**31 - 1):
            raise ValueError(f"Expected `steps` in [1, 2**31 - 1]. Received: steps={steps!r}")
        self.steps = int(steps)
        lo, hi = value_range
        if not lo < hi:
            raise ValueError(f"Expected `value_range` (lo, hi) with lo < hi. Received: {value_range!r}")
        self.value_range = (float(lo), float(hi))
        self.method = get_method(method)
        self.seed = int(seed)
        self.model = model
        self._probabilities = needs_linear_copy(model)
        self._logits = LogitsModel(model)
        self._seed_generator = keras.random.SeedGenerator(seed)

    def compile(self, *args, **kwargs):
        super().compile(*args, **kwargs)
        # Build the optimiser's slots now, so the compiled step does not create variables
        # on its first trace (which makes TensorFlow trace it twice).
        self.optimizer.build(self.trainable_variables)

    def call(self, inputs, training=False):
        return self.model(inputs, training=training)

    def _distribution(self, outputs):
        if self._probabilities:
            return ops.clip(outputs, 1e-7, 1.0)
        return ops.softmax(outputs, axis=-1)

    def budgets(self, x, labels):
        """Per-feature budgets ``ε · (hi − lo) · (1 − S)^γ`` (same shape as ``x``)."""
        self._logits.sync()
        forward = ModelFunction(self._logits.forward, int(self.model.outputs[0].shape[-1]))
        saliency = ops.abs(self.method(x, forward, IndexTargets(labels)))
        axes = tuple(range(1, len(x.shape)))
        peak = ops.max(saliency, axis=axes, keepdims=True)
        scaled = saliency / ops.maximum(peak, 1e-12)
        lo, hi = self.value_range
        return self.epsilon * (hi - lo) * ops.power(1.0 - scaled, self.gamma)

    def perturb(self, x, labels):
        """The adversarial inputs ``x + δ`` and the budgets used (both of ``x``'s shape)."""
        x = ops.convert_to_tensor(x, "float32")
        labels = ops.convert_to_tensor(labels, "int32")
        budget = ops.stop_gradient(self.budgets(x, labels))
        lo, hi = self.value_range
        clean = ops.stop_gradient(self._distribution(self.model(x, training=False)))
        step = self.step_size * self.epsilon * (hi - lo)
        delta = budget * keras.random.uniform(ops.shape(x), -1.0, 1.0,
                                              seed=self._seed_generator)
        delta = ops.clip(x + delta, lo, hi) - x

        def divergence(d):
            adversarial = self._distribution(self.model(x + d, training=False))
            return _kl(clean, adversarial)

        for _ in range(self.steps):
            direction = ops.sign(backend.gradient(divergence, delta))
            delta = ops.clip(delta + step * direction, -budget, budget)
            delta = ops.clip(x + delta, lo, hi) - x
        return ops.stop_gradient(x + delta), budget

    def train_step(self, *args):
        """One SCAAT step: ``(data)`` on TensorFlow, ``(state, data)`` on JAX."""
        return backend.train_step(self, args, self._step)

    def _step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        labels = ops.cast(y, "int32")
        if len(labels.shape) > 1 and labels.shape[-1] != 1:
            labels = ops.cast(ops.argmax(labels, axis=-1), "int32")  # one-hot labels
        labels = ops.reshape(labels, (-1,))
        x_adv, _ = self.perturb(x, labels)

        def objective():
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                     training=True)
            adversarial = self(x_adv, training=True)
            divergence = ops.mean(_kl(self._distribution(y_pred),
                                      self._distribution(adversarial)))
            found = {"y_pred": y_pred, "loss": loss, "divergence": divergence}
            return loss + self.beta * divergence, found

        found = backend.minimise(self, objective)
        # Keras's own train_step feeds the "loss" metric the same way.
        tracker = getattr(self, "_loss_tracker", None)
        if tracker is not None:
            tracker.update_state(found["loss"], sample_weight=ops.shape(x)[0])
        logs = self.compute_metrics(x, y, found["y_pred"], sample_weight)
        logs["kl"] = found["divergence"]  # this batch's KL(f(x) ‖ f(x + δ))
        return logs

    def get_config(self):
        return {
            "epsilon": self.epsilon, "gamma": self.gamma, "steps": self.steps,
            "step_size": self.step_size, "beta": self.beta, "value_range": self.value_range,
            "method": {"name": self.method.name, "config": self.method.get_config()},
            "seed": self.seed,
        }


def _kl(p, q):
    """``KL(p ‖ q)`` per row for categorical distributions."""
    p = ops.clip(p, 1e-7, 1.0)
    q = ops.clip(q, 1e-7, 1.0)
    return ops.sum(p * (ops.log(p) - ops.log(q)), axis=-1)
