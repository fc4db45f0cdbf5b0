"""DecoyConfig: the settings of the decoy engine (frozen, validated, serialisable)."""

import dataclasses
import math
from collections.abc import Mapping
from typing import Callable, Optional, Tuple, Union

import numpy as np

from keras_dance import _validation

IntOrTuple = Union[int, Tuple[int, ...]]


def _positive_ints(value, name, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()  # np.array(8): the int it holds
    try:
        values = (value,) if np.isscalar(value) else tuple(value)
    except TypeError:  # neither a number nor a sequence
        values = ()
    if not values or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in values
    ):
        raise ValueError(
            f"Expected `{name}` to be a positive int or a tuple of them (one per spatial "
            f"axis). Received: {name}={value!r}"
        )
    return int(values[0]) if len(values) == 1 and np.isscalar(value) else tuple(map(int, values))


@dataclasses.dataclass(frozen=True)
class DecoyConfig:
    """How decoys are made (DANCE, Lu et al. ICML 2021, Eq. 2; docs/papers.md §1).

    For every patch ``M`` and sign ``s ∈ {+1, −1}`` the engine solves

        maximise ‖((x̃ − x)·s)⁺‖₁  s.t.  ‖F_l(x̃) − F_l(x)‖∞ ≤ ε,  x̃ ∈ [lo, hi]^d,
        (x̃ − x)∘(1 − M) = 0,  |x̃ − x| ≤ τ (when ``tau`` is given)

    with projected Adam on ``−Σ_patch s·(x̃ − x)/|M| + λ·relu(viol − ε)/ε`` and a
    per-problem multiplier λ (raised ×``multiplier_growth`` while violated, lowered
    ÷``multiplier_growth`` while feasible), keeping the best feasible iterate. The solver is
    our reconstruction (the paper's appendix was not available); defaults come from
    ``benchmarks/decoy_defaults.py`` (see docs/decoys.md).

    Args:
        layer: the intermediate layer ``l``: a name (searched through nested models, e.g. a
            base model used as a layer), a path ``"outer/inner"``, an index into
            ``model.layers``, a ``keras.layers.Layer`` of the model, or a callable
            ``x -> F_l(x)`` (for subclassed models; runs without cropping).
        patch: patch side, an int or one per spatial axis; None picks the smallest side
            ≥ 3 that tiles the input with at most 256 patches (``kd.decoys.masks.
            auto_patch``: 3 up to 48×48 inputs, 4 at 64×64, 14 at 224×224), so large
            inputs do not silently cost tens of thousands of decoys. Defaults to None.
        stride: patch stride, int or tuple. Defaults to the patch (tiling patches); a final
            patch is aligned to the far border so every feature is covered.
        epsilon: tolerance on layer ``l`` (> 0). Defaults to 0.1.
        relative_epsilon: when True, ε = ``epsilon`` × max|F_l(x)| per input; else
            ``epsilon`` is absolute. Defaults to True.
        value_range: the box ``(lo, hi)``; inputs must lie inside it. Defaults to (0, 1).
        tau: optional cap on each feature's change (input units, > 0). Defaults to None.
        steps: maximum Adam steps per problem. Defaults to 60.
        learning_rate: Adam step as a fraction of ``hi − lo``. Defaults to 0.05.
        initial_multiplier: the initial Lagrange multiplier λ (> 0). Defaults to 1.0.
        multiplier_growth: factor by which λ moves each step (> 1). Defaults to 1.5.
        patience: stop a problem after this many steps without a better feasible iterate;
            the loop exits when every problem has stopped. 0 disables early exit.
            Defaults to 15.
        kind: "optimized" (Eq. 2, two decoys per patch) or "constant" (the paper's
            ablation: one decoy per patch with the patch set to the input's mean value).
            Defaults to "optimized".
        crop: "auto" evaluates the constraint on receptive-field crops when the sub-model
            is local and the crop is verified exact; False always uses the full input.
            Defaults to "auto".
        seed: seed of the random start inside each patch. Defaults to 0.

    Example:
        >>> import keras_dance as kd
        >>> config = kd.DecoyConfig(layer="conv2", patch=3, epsilon=0.1)
    """

    layer: Union[str, int, Callable]
    patch: Optional[IntOrTuple] = None
    stride: Optional[IntOrTuple] = None
    epsilon: float = 0.1
    relative_epsilon: bool = True
    value_range: Tuple[float, float] = (0.0, 1.0)
    tau: Optional[float] = None
    steps: int = 60
    learning_rate: float = 0.05
    initial_multiplier: float = 1.0
    multiplier_growth: float = 1.5
    patience: int = 15
    kind: str = "optimized"
    crop: Union[str, bool] = "auto"
    seed: int = 0

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        layer = self.layer
        if isinstance(layer, bool) or not (isinstance(layer, (str, int, np.integer))
                                           or callable(layer)):
            raise TypeError(
                "Expected `layer` to be a layer name or path ('outer/inner'), an index, a "
                f"keras Layer or a callable x -> F_l(x). Received: layer={layer!r}"
            )
        if isinstance(layer, str) and (not layer or "" in layer.split("/")):
            raise ValueError(
                "Expected `layer` to be a layer name or a path 'outer/inner' of names. "
                f"Received: layer={layer!r}"
            )
        set_("patch", _positive_ints(self.patch, "patch", allow_none=True))
        set_("stride", _positive_ints(self.stride, "stride", allow_none=True))
        for name in ("epsilon", "learning_rate", "initial_multiplier"):
            value = getattr(self, name)
            if not _is_number(value) or not value > 0 or not math.isfinite(value):
                raise ValueError(f"Expected `{name}` > 0. Received: {name}={value!r}")
            set_(name, float(value))
        set_("multiplier_growth", _validation.check_finite_number(
            self.multiplier_growth, "multiplier_growth", minimum=1))
        set_("value_range", _validation.check_range(self.value_range, "value_range"))
        if self.tau is not None:
            if not _is_number(self.tau) or not self.tau > 0 or not math.isfinite(self.tau):
                raise ValueError(f"Expected `tau` > 0 or None. Received: tau={self.tau!r}")
            set_("tau", float(self.tau))
        # Loop counters are int32 inside the compiled solver.
        set_("steps", _validation.check_positive_int(self.steps, "steps"))
        set_("patience", _validation.check_positive_int(self.patience, "patience", minimum=0))
        set_("seed", _validation.check_seed(self.seed))
        if not _validation.is_choice(self.kind, ("optimized", "constant")):
            raise ValueError(
                "Expected `kind` to be 'optimized' or 'constant'. "
                f"Received: kind={self.kind!r}"
            )
        if not _validation.is_choice(self.crop, ("auto", False)):
            raise ValueError(f"Expected `crop` to be 'auto' or False. Received: crop={self.crop!r}")
        if not isinstance(self.relative_epsilon, bool):
            raise TypeError(
                "Expected `relative_epsilon` to be a bool. "
                f"Received: relative_epsilon={self.relative_epsilon!r}"
            )

    def get_config(self):
        """The settings as a dict (JSON-ready when ``layer`` is a name, path or index)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    @classmethod
    def from_config(cls, config):
        if not isinstance(config, Mapping):
            raise TypeError(
                "Expected `config` to be a dict from DecoyConfig.get_config(). "
                f"Received: config={config!r}")
        config = dict(config)
        for key in ("patch", "stride", "value_range"):
            if isinstance(config.get(key), list):
                config[key] = tuple(config[key])
        return cls(**config)


def _is_number(value):
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
