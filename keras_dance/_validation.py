"""Checks of user input, in Keras's "Expected … Received: …" style."""

import numpy as np


def as_numpy(value):
    """A backend tensor or variable as numpy (``.numpy()``); anything else unchanged."""
    if not isinstance(value, np.ndarray) and callable(getattr(value, "numpy", None)):
        return np.asarray(value.numpy())
    return value


def as_numeric_array(value, name, kinds="biuf"):
    """``value`` as a numpy array whose dtype kind is in ``kinds``, else a TypeError."""
    try:
        array = np.asarray(value)
    except Exception as error:  # ragged nests and the like
        raise TypeError(
            f"Expected `{name}` to be a numeric array. Received: {name} of type "
            f"{type(value).__name__} ({error})"
        ) from error
    if array.dtype.kind not in kinds:
        allowed = "float or int" if "b" not in kinds else "bool, int or float"
        raise TypeError(
            f"Expected `{name}` to be a numeric array with a numeric dtype ({allowed}). "
            f"Received: {name} with dtype={array.dtype}"
        )
    return array


def as_input_batch(x, feature_shape, name="x"):
    """Validates one batch and returns it as a float32 numpy array.

    Raises:
        TypeError: non-numeric dtype.
        ValueError: wrong rank or shape, empty batch, NaN or Inf.
    """
    x = as_numpy(x)
    array = as_numeric_array(x, name, kinds="fiu")
    expected = (None,) + tuple(feature_shape)
    if array.ndim != len(expected):
        raise ValueError(
            f"Expected `{name}` of rank {len(expected)} with shape {expected} (a batch of "
            f"the model's inputs). Received: {name}.shape={array.shape}"
        )
    for want, got in zip(expected[1:], array.shape[1:]):
        if want is not None and want != got:
            raise ValueError(
                f"Expected `{name}` with shape {expected}. Received: {name}.shape={array.shape}"
            )
    if array.shape[0] == 0:
        raise ValueError(f"Expected a non-empty batch. Received: {name}.shape={array.shape}")
    array = array.astype(np.float32, copy=False)
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(
            f"Expected finite values in `{name}`. Received: {name} with {bad} NaN or Inf "
            "values"
        )
    return array


def as_target_indices(targets, batch, num_classes):
    """Validates ``None``/int/(B,) int targets; returns int32 (B,), -1 meaning predicted."""
    if targets is None:
        if num_classes is None:
            raise ValueError(
                "Expected `targets` (a score function) for a model without a class axis. "
                "Received: targets=None"
            )
        return np.full((batch,), -1, np.int32)
    array = np.asarray(targets)
    if array.dtype.kind not in "iu":
        raise TypeError(
            "Expected `targets` to be None, an int, a (B,) int array or a callable. "
            f"Received: targets={targets!r}"
        )
    if array.ndim == 0:
        array = np.full((batch,), int(array))
    if array.shape != (batch,):
        raise ValueError(
            f"Expected `targets` of shape ({batch},), one per input. "
            f"Received: targets.shape={array.shape}"
        )
    if num_classes is None:
        raise ValueError(
            "Expected `targets` to be a score function for a model without a class axis. "
            f"Received: targets={targets!r}"
        )
    if array.min() < 0 or array.max() >= num_classes:
        raise ValueError(
            f"Expected `targets` in [0, {num_classes}). Received: targets with values in "
            f"[{array.min()}, {array.max()}]"
        )
    return array.astype(np.int32)


#: The largest count a compiled loop takes: loop counters and chunk offsets are int32.
MAX_INT32 = 2**31 - 1
#: The memory knob's ceiling: more rows per pass than this cannot fit in any memory, and
#: chunk arithmetic (``count + per_pass − 1``) must stay inside int32.
MAX_BATCH_SIZE = 2**24


def check_positive_int(value, name, minimum=1, maximum=MAX_INT32):
    """``value`` as an int in ``[minimum, maximum]``, else a ValueError naming ``name``."""
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
            or not minimum <= value <= maximum):
        raise ValueError(
            f"Expected `{name}` to be an integer in [{minimum}, {maximum}]. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def as_token_batch(x, token_shape, vocabulary_size=None, name="x"):
    """Validates a batch of token ids ``(B, L)`` and returns it as an int32 numpy array.

    Floats are accepted only when every value is a whole number.

    Raises:
        TypeError / ValueError: wrong dtype, shape, non-integer or out-of-vocabulary ids.
    """
    x = as_numpy(x)
    array = as_numeric_array(x, name, kinds="fiu")
    expected = (None,) + tuple(token_shape)
    if array.ndim != len(expected) or any(w is not None and w != g
                                          for w, g in zip(expected[1:], array.shape[1:])):
        raise ValueError(
            f"Expected `{name}` to be token ids of shape {expected}. Received: "
            f"{name}.shape={array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"Expected a non-empty batch. Received: {name}.shape={array.shape}")
    if array.dtype.kind == "f" and not (np.all(np.isfinite(array))
                                        and np.all(array == np.round(array))):
        raise ValueError(
            f"Expected integer token ids in `{name}`. Received: {name} with non-integer "
            "values")
    low, high = array.min(), array.max()
    if low < 0 or (vocabulary_size is not None and high >= vocabulary_size):
        raise ValueError(
            f"Expected token ids in [0, {vocabulary_size}) in `{name}`. Received: ids in "
            f"[{int(low)}, {int(high)}]")
    return array.astype(np.int32)


def _is_real(value):
    return (not isinstance(value, (bool, np.bool_))
            and isinstance(value, (int, float, np.integer, np.floating)))


def check_range(value, name):
    """``value`` as ``(lo, hi)``: two finite real numbers with ``lo < hi``.

    Strings, mappings, sets and bools are refused (``"01"`` is not a range, and a dict
    would be read by its keys).
    """
    ok = isinstance(value, (tuple, list, np.ndarray)) and len(value) == 2 and all(
        _is_real(v) and np.isfinite(v) for v in value)
    if not ok or not value[0] < value[1]:
        raise ValueError(
            f"Expected `{name}` to be (lo, hi): two finite numbers with lo < hi. "
            f"Received: {name}={value!r}"
        )
    return float(value[0]), float(value[1])


#: Seeds are integers in [0, MAX_SEED]; the counter-based streams use their low 32 bits.
MAX_SEED = 2**63 - 1


def check_seed(seed, name="seed"):
    """``seed`` as an int in ``[0, MAX_SEED]``, else a ValueError naming it."""
    return check_positive_int(seed, name, minimum=0, maximum=MAX_SEED)


def check_finite_number(value, name, minimum=None, exclusive=True):
    """``value`` as a finite float (above ``minimum``, when given) naming ``name``."""
    if not _is_real(value) or not np.isfinite(value) or (minimum is not None and not (
            value > minimum if exclusive else value >= minimum)):
        bound = "" if minimum is None else f" {'>' if exclusive else '>='} {minimum}"
        raise ValueError(
            f"Expected `{name}` to be a finite number{bound}. Received: {name}={value!r}"
        )
    return float(value)


def is_choice(value, choices):
    """Whether ``value`` is one of ``choices`` (strings, None, bools), compared without
    asking arrays or other objects for a truth value (``np.array(["range", "mean"]) in
    choices`` raises NumPy's "truth value … is ambiguous")."""
    if value is not None and not isinstance(value, (str, bool, int)):
        return False
    return any(type(value) is type(choice) and value == choice for choice in choices)


def check_non_empty(array, name):
    """``array`` when it holds at least one value (no zero-length axis, the batch axis
    included); else a ValueError naming ``name``."""
    if array.size == 0:
        raise ValueError(f"Expected non-empty `{name}`. Received: {name}.shape={array.shape}")
    return array


def as_maps(maps, name="maps"):
    """Validated maps: numeric, rank >= 2 (a batch axis), finite; float32."""
    array = as_numeric_array(maps, name).astype(np.float32)
    if array.ndim < 2:
        raise ValueError(
            f"Expected `{name}` with a batch axis (rank >= 2). Received: {name}.shape={array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"Expected finite values in `{name}`. Received: NaN or Inf in {name}")
    return array


def as_masks(masks, name="masks"):
    """Validated ground-truth masks: boolean, or numbers that are all 0 or 1."""
    array = as_numeric_array(masks, name)
    if array.dtype.kind != "b":
        if not np.all(np.isfinite(array)) or not np.all((array == 0) | (array == 1)):
            raise ValueError(
                f"Expected `{name}` to be boolean (or 0/1 numbers). Received: {name} with "
                f"values other than 0 and 1 (e.g. NaN)"
            )
    return array.astype(bool)


def as_baseline(baseline, feature_shape, name="baseline"):
    """A finite baseline broadcast to one input's shape."""
    array = as_numeric_array(baseline, name).astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"Expected a finite `{name}`. Received: {name} with NaN or Inf")
    try:
        return np.broadcast_to(array, feature_shape)
    except ValueError as error:
        raise ValueError(
            f"Expected `{name}` to be a scalar or broadcastable to one input "
            f"{tuple(feature_shape)}. Received: {name}.shape={array.shape}"
        ) from error


def same_shape(a, b, name_a, name_b):
    if np.shape(a) != np.shape(b):
        raise ValueError(
            f"Expected `{name_b}` with the shape of `{name_a}` {np.shape(a)}. "
            f"Received: {name_b}.shape={np.shape(b)}"
        )


def check_callable(value, name):
    """``value`` if it is None or callable, else a TypeError naming ``name``."""
    if value is not None and not callable(value):
        raise TypeError(f"Expected `{name}` to be a callable or None. Received: "
                        f"{name}={value!r}")
    return value
