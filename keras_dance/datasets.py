"""Data shipped with the library or generated deterministically by it (no downloads)."""

from pathlib import Path

import numpy as np

#: Where the trained example models live: package data, so that a wheel (and every Ray or
#: Beam worker that installs one) has them; ``saved_models/`` in a checkout links here.
SAVED_MODELS = Path(__file__).resolve().parent / "saved_models"
DIGITS_MODEL = "digits_cnn.keras"


def load_digits(size=32, test_fraction=0.2, seed=0):
    """scikit-learn's bundled handwritten digits as images in [0, 1].

    The 8×8 images (values 0–16) are scaled to [0, 1] and resized bilinearly to
    ``size × size``; the split is a seeded permutation (the shipped model was trained on
    the default split).

    Args:
        size: image side. Defaults to 32.
        test_fraction: held-out fraction. Defaults to 0.2.
        seed: permutation seed. Defaults to 0.

    Returns:
        ``(x_train, y_train, x_test, y_test)``: float32 ``(N, size, size, 1)`` images and
        int32 labels.
    """
    import keras
    from sklearn.datasets import load_digits as sklearn_digits

    if not 0 < test_fraction < 1:
        raise ValueError(
            f"Expected `test_fraction` in (0, 1). Received: test_fraction={test_fraction!r}"
        )
    digits = sklearn_digits()
    images = digits.images.astype(np.float32)[..., None] / 16.0
    images = keras.ops.convert_to_numpy(
        keras.ops.image.resize(images, (size, size), interpolation="bilinear"))
    images = np.clip(images, 0.0, 1.0).astype(np.float32)
    labels = digits.target.astype(np.int32)
    order = np.random.RandomState(seed).permutation(len(labels))
    cut = int(round(len(labels) * (1 - test_fraction)))
    train, test = order[:cut], order[cut:]
    return images[train], labels[train], images[test], labels[test]


def load_digits_model(path=None):
    """Loads the shipped digits CNN (``saved_models/digits_cnn.keras``) safely."""
    return load_model("digits_cnn") if path is None else _load(Path(path))


def _load(path):
    import keras

    if not path.exists():
        raise FileNotFoundError(
            f"Expected a saved model at {path} (the scripts in examples/ train them). "
            f"Received: path={str(path)!r}"
        )
    import_keras_hub_for(path)
    return keras.models.load_model(path, safe_mode=True)


def import_keras_hub_for(path):
    """Imports keras_hub when the ``.keras`` file at ``path`` names its classes (they
    register on import), and only then: keras_hub imports TensorFlow, which a JAX or
    PyTorch process otherwise never loads.

    Raises:
        ImportError: the file needs keras_hub and it is not installed, naming the extra.
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            needs = b'"keras_hub' in archive.read("config.json")
    except (OSError, KeyError, zipfile.BadZipFile):
        return  # not a .keras archive: Keras reports what it is
    if not needs:
        return
    try:
        import keras_hub  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"Expected keras_hub installed to load {Path(path).name} (a model built from "
            f"keras_hub classes): pip install 'keras-dance[hub]'. Received: {error}"
        ) from error


# ---------------------------------------------------------------- ground-truth tasks

SHAPE_CLASSES = ("cross", "square", "triangle", "ell")


def _stamp(kind, size):
    """A ``size × size`` binary stamp of a class-determining shape."""
    s = size
    grid = np.zeros((s, s), bool)
    c = s // 2
    if kind == "cross":
        grid[c, :] = True
        grid[:, c] = True
    elif kind == "square":
        grid[0, :] = grid[-1, :] = grid[:, 0] = grid[:, -1] = True
    elif kind == "triangle":
        for r in range(s):
            half = (r * c) // max(s - 1, 1)
            grid[r, c - half:c + half + 1] = True
    elif kind == "ell":
        grid[:, 0] = True
        grid[-1, :] = True
    else:
        raise ValueError(f"unknown shape {kind!r}")
    return grid


def make_shapes(count, size=32, shape_size=7, distractors=3, seed=0):
    """Images where a small shape decides the class; ground-truth masks returned.

    Each grayscale image has a smooth random texture (values 0.1–0.4), ``distractors``
    filled discs (present in every class, so carrying no class information) and one
    class-determining outline shape (cross, square, triangle or ell, brightness 0.9) at a
    random place that does not overlap them. Deterministic under ``seed``.

    Returns:
        ``(images (N, size, size, 1) float32 in [0, 1], labels (N,) int32,
        masks (N, size, size) bool)`` — the mask covers the shape's pixels.
    """
    rng = np.random.default_rng(seed)
    images = np.zeros((count, size, size, 1), np.float32)
    labels = rng.integers(0, len(SHAPE_CLASSES), count).astype(np.int32)
    masks = np.zeros((count, size, size), bool)
    yy, xx = np.mgrid[:size, :size]
    for i in range(count):
        coarse = rng.uniform(0.1, 0.4, size=(size // 4 + 1, size // 4 + 1))
        texture = np.kron(coarse, np.ones((4, 4)))[:size, :size]
        texture += rng.normal(0, 0.03, size=(size, size))
        occupied = np.zeros((size, size), bool)
        for _ in range(distractors):
            r, cy, cx = rng.integers(2, 4), rng.integers(3, size - 3), rng.integers(3, size - 3)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            texture = np.where(disc, 0.75, texture)
            occupied |= disc
        stamp = _stamp(SHAPE_CLASSES[labels[i]], shape_size)
        for _ in range(100):
            top, left = rng.integers(0, size - shape_size + 1, size=2)
            window = occupied[top:top + shape_size, left:left + shape_size]
            if not window.any():
                break
        placed = np.zeros((size, size), bool)
        placed[top:top + shape_size, left:left + shape_size] = stamp
        images[i, ..., 0] = np.clip(np.where(placed, 0.9, texture), 0, 1)
        masks[i] = placed
    return images, labels, masks


CONFIGURATION_CLASSES = ("cross left of square", "cross right of square")


def make_configurations(count, size=64, shape_size=9, distractors=4, seed=0):
    """Images whose class is a configuration of two parts: which side the cross is on.

    Every image holds a cross and a square outline (brightness 0.9) on a smooth random
    texture (0.1–0.4), with ``distractors`` other parts at the same brightness (filled
    discs, triangle and ell outlines) that carry no class information. The label is 0 when
    the cross lies left of the square and 1 when it lies right of it (the two are at least
    ``shape_size + 1`` columns apart, anywhere vertically): both parts occur in every
    class, so no single part decides — only their arrangement does. Deterministic under
    ``seed``.

    Returns:
        ``(images (N, size, size, 1) float32 in [0, 1], labels (N,) int32,
        masks (N, size, size) bool)`` — the mask covers the cross's and the square's pixels.
    """
    from keras_dance import _validation

    _validation.check_positive_int(count, "count")
    _validation.check_positive_int(shape_size, "shape_size", minimum=3)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2 * shape_size + 2:
        raise ValueError(
            f"Expected `size` >= 2 * shape_size + 2 = {2 * shape_size + 2} (two parts side by "
            f"side). Received: size={size!r}"
        )
    rng = np.random.default_rng(seed)
    images = np.zeros((count, size, size, 1), np.float32)
    labels = rng.integers(0, 2, count).astype(np.int32)
    masks = np.zeros((count, size, size), bool)
    yy, xx = np.mgrid[:size, :size]
    span = size - shape_size + 1
    others = [_stamp(kind, shape_size) for kind in ("triangle", "ell")]
    for i in range(count):
        coarse = rng.uniform(0.1, 0.4, size=(size // 8 + 1, size // 8 + 1))
        texture = np.kron(coarse, np.ones((8, 8)))[:size, :size]
        texture += rng.normal(0, 0.03, size=(size, size))
        while True:  # two columns at least shape_size + 1 apart
            left, right = np.sort(rng.integers(0, span, 2))
            if right - left > shape_size:
                break
        cross_x, square_x = (left, right) if labels[i] == 0 else (right, left)
        cross_y, square_y = rng.integers(0, span, 2)
        deciding = np.zeros((size, size), bool)
        for kind, top, left_ in (("cross", cross_y, cross_x), ("square", square_y, square_x)):
            deciding[top:top + shape_size, left_:left_ + shape_size] |= _stamp(kind, shape_size)
        occupied = np.zeros((size, size), bool)
        for _ in range(2):  # keep a margin around the deciding parts
            occupied |= np.roll(deciding, 1, 0) | np.roll(deciding, -1, 0)
            occupied |= np.roll(occupied, 1, 1) | np.roll(occupied, -1, 1) | deciding
        bright = deciding.copy()
        for d in range(distractors):
            for _ in range(100):
                top, left_ = rng.integers(0, span, 2)
                if d % 2 == 0:
                    r = shape_size // 2
                    part = ((yy - top - r) ** 2 + (xx - left_ - r) ** 2) <= (r - 1) ** 2
                else:
                    part = np.zeros((size, size), bool)
                    part[top:top + shape_size, left_:left_ + shape_size] = others[(d // 2) % 2]
                if not (part & occupied).any():
                    break
            else:
                continue
            bright |= part
            occupied |= part
        images[i, ..., 0] = np.clip(np.where(bright, 0.9, texture), 0, 1)
        masks[i] = deciding
    return images, labels, masks


def _saturation_template(side=5):
    """Zero-mean 5×5 plus sign: +1 on the plus, a negative constant on the rest."""
    plus = _stamp("cross", side)
    return np.where(plus, 1.0, -plus.sum() / (~plus).sum()).astype(np.float32)


def make_saturation(count, size=32, seed=0):
    """Images for the saturation probe: a bright plus sign whose evidence saturates.

    A smooth texture (0.2–0.4) with one 5×5 plus sign raised by a contrast of 0.45–0.65
    above its surroundings, at a random place. With ``saturating_model`` the evidence
    ``E`` (the plus detector's maximum) lies far up the model's tanh (``E/s ≈ 4–6``), so
    the gradient on the plus is tiny (sech² ≈ 10⁻³–10⁻⁵) while the class is certain.

    Returns:
        ``(images (N, size, size, 1) float32, labels (N,) int32 (all 1: the plus is
        present), masks (N, size, size) bool covering the plus's 5×5 window)``.
    """
    from keras_dance import _validation

    _validation.check_positive_int(count, "count")
    _validation.check_positive_int(size, "size", minimum=8)
    rng = np.random.default_rng(seed)
    side = 5
    plus = _stamp("cross", side)
    images = np.zeros((count, size, size, 1), np.float32)
    masks = np.zeros((count, size, size), bool)
    for i in range(count):
        coarse = rng.uniform(0.2, 0.4, size=(size // 8 + 1, size // 8 + 1))
        image = np.kron(coarse, np.ones((8, 8)))[:size, :size]
        image += rng.normal(0, 0.02, size=(size, size))
        top, left = rng.integers(1, size - side, 2)
        window = (slice(top, top + side), slice(left, left + side))
        image[window] = np.where(plus, image[window].mean() + rng.uniform(0.45, 0.65),
                                 image[window])
        images[i, ..., 0] = np.clip(image, 0, 1)
        masks[i][window] = True
    return images, np.ones(count, np.int32), masks


def saturating_model(size=32, scale=0.8, evidence_weight=6.0, context_weight=10.0):
    """A classifier whose evidence saturates by construction (the saturation probe).

    ``logit_1 = evidence_weight · tanh(E / scale) + context_weight · mean(x) − 6``,
    ``logit_0 = 0``, where ``E`` is the global maximum of a zero-mean plus-sign detector
    (layer ``"detector"``, a 5×5 convolution). On ``make_saturation`` images the tanh is
    flat, so the plain gradient of class 1 is dominated by the unsaturated context term —
    the same everywhere — and nearly blind to the plus that decides the class. Weights are
    set, not trained.
    """
    import keras

    inputs = keras.Input((size, size, 1), name="image")
    detector = keras.layers.Conv2D(1, 5, use_bias=False, name="detector")
    evidence = keras.layers.GlobalMaxPooling2D(name="evidence")(detector(inputs))
    saturated = keras.layers.Activation("tanh", name="saturate")(
        keras.layers.Rescaling(1.0 / scale, name="scale")(evidence))
    context = keras.layers.GlobalAveragePooling2D(name="context")(inputs)
    joined = keras.layers.Concatenate(name="join")([saturated, context])
    head = keras.layers.Dense(2, activation="softmax", name="predictions")
    model = keras.Model(inputs, head(joined), name="saturating_model")
    detector.set_weights([_saturation_template()[..., None, None]])
    head.set_weights([np.array([[0.0, evidence_weight], [0.0, context_weight]], np.float32),
                      np.array([0.0, -6.0], np.float32)])
    return model


MOTIFS = ("TGACGT", "CCAATG")


def make_motifs(count, length=100, seed=0):
    """One-hot DNA-like sequences whose label needs two motifs together.

    Label 1 iff both motifs (``MOTIFS``) are present; negatives are split evenly between
    sequences with only the first motif, only the second, and neither — so either motif
    alone carries no evidence for class 1: the interaction DANCE claims to capture.

    Returns:
        ``(x (N, length, 4) float32 one-hot over ACGT, labels (N,) int32,
        masks (N, length) bool marking the planted motifs' positions)``.
    """
    rng = np.random.default_rng(seed)
    alphabet = "ACGT"
    x = np.zeros((count, length, 4), np.float32)
    labels = np.zeros(count, np.int32)
    masks = np.zeros((count, length), bool)
    kinds = rng.integers(0, 6, count)  # 0-2 positive, 3: first only, 4: second only, 5: none
    for i in range(count):
        sequence = rng.integers(0, 4, length)
        plant = {0: (0, 1), 1: (0, 1), 2: (0, 1), 3: (0,), 4: (1,), 5: ()}[int(kinds[i])]
        labels[i] = int(len(plant) == 2)
        used = np.zeros(length, bool)
        for motif_index in plant:
            motif = MOTIFS[motif_index]
            for _ in range(100):
                start = rng.integers(0, length - len(motif) + 1)
                if not used[start:start + len(motif)].any():
                    break
            sequence[start:start + len(motif)] = [alphabet.index(c) for c in motif]
            used[start:start + len(motif)] = True
        x[i, np.arange(length), sequence] = 1.0
        masks[i] = used
    return x, labels, masks


def load_cancer(test_fraction=0.25, seed=0):
    """scikit-learn's bundled breast-cancer data, scaled to [0, 1] with training stats.

    Columns are reordered so that each of the ten measurements' three statistics (mean,
    standard error, worst) are adjacent: a patch of 3 with stride 3 is one measurement, the
    natural feature group for swappable features.

    Returns:
        ``(x_train, y_train, x_test, y_test, feature_names)``.
    """
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    order = [i + 10 * k for i in range(10) for k in range(3)]
    x = data.data[:, order].astype(np.float32)
    names = [data.feature_names[i] for i in order]
    y = data.target.astype(np.int32)
    permutation = np.random.RandomState(seed).permutation(len(y))
    cut = int(round(len(y) * (1 - test_fraction)))
    train, test = permutation[:cut], permutation[cut:]
    low, high = x[train].min(0), x[train].max(0)
    scaled = np.clip((x - low) / np.where(high > low, high - low, 1), 0, 1).astype(np.float32)
    return scaled[train], y[train], scaled[test], y[test], names


def load_model(name):
    """Loads a shipped model from ``saved_models/`` (``digits_cnn``, ``shapes_cnn``,
    ``motifs_cnn``, ``cancer_mlp``, …) with Keras's safe mode; ``mini_xception`` is a
    legacy HDF5 file (``.hdf5``), as pretrained Keras-2-era models come."""
    path = SAVED_MODELS / f"{name}.keras"
    legacy = SAVED_MODELS / f"{name}.hdf5"
    return _load(legacy if legacy.exists() and not path.exists() else path)


# ---------------------------------------------------------------- text (token models)

POSITIVE_WORDS = ("good", "great", "excellent", "wonderful", "brilliant", "charming",
                  "moving", "funny", "superb", "delightful")
NEGATIVE_WORDS = ("bad", "awful", "boring", "terrible", "dull", "poor", "weak", "tedious",
                  "bland", "clumsy")
NEGATORS = ("not", "never", "hardly")
INTENSIFIERS = ("very", "really", "truly", "so")
FILLER = ("the", "a", "this", "movie", "film", "plot", "story", "acting", "cast", "was",
          "is", "and", "it", "of", "with", "script", "ending", "music", "director", "scenes",
          "but", "quite", "overall", "i", "thought", "felt", "some", "moments", "seemed",
          "there")
#: Token ids: 0 is padding, 1 out-of-vocabulary, then the words above in order.
SENTIMENT_VOCABULARY = (("[PAD]", "[UNK]") + POSITIVE_WORDS + NEGATIVE_WORDS + NEGATORS
                        + INTENSIFIERS + FILLER)
TEXT_CLASSES = ("negative", "positive")


def make_sentiment(count, length=16, seed=0):
    """Sentences whose sentiment needs negation scope; ground truth marks the deciding words.

    Each sentence is filler words around one sentiment word, optionally preceded by an
    intensifier; in half of them a negator stands right before it (or before its
    intensifier: "not very good") and flips the label. Half of all sentences also hold a
    negator *out of scope* (followed by filler, or after the sentiment word), so a negator
    alone carries no evidence: only its place relative to the sentiment word does (the
    interaction DANCE claims to capture). Sentences are padded with id 0 to ``length``.

    Returns:
        ``(ids (N, length) int32 over SENTIMENT_VOCABULARY, labels (N,) int32 (1:
        positive), masks (N, length) bool: the sentiment word and its in-scope negator)``.
    """
    from keras_dance import _validation

    _validation.check_positive_int(count, "count")
    _validation.check_positive_int(length, "length", minimum=10)
    index = {word: i for i, word in enumerate(SENTIMENT_VOCABULARY)}
    rng = np.random.default_rng(seed)
    ids = np.zeros((count, length), np.int32)
    labels = np.zeros(count, np.int32)
    masks = np.zeros((count, length), bool)
    for i in range(count):
        size = int(rng.integers(8, length + 1))
        words = [FILLER[k] for k in rng.integers(0, len(FILLER), size)]
        positive, negated = bool(rng.integers(0, 2)), bool(rng.integers(0, 2))
        intensified = bool(rng.integers(0, 2))
        phrase = ([NEGATORS[rng.integers(0, len(NEGATORS))]] if negated else []) + (
            [INTENSIFIERS[rng.integers(0, len(INTENSIFIERS))]] if intensified else []) + [
            (POSITIVE_WORDS if positive else NEGATIVE_WORDS)[rng.integers(0, 10)]]
        start = int(rng.integers(0, size - len(phrase) + 1))
        words[start:start + len(phrase)] = phrase
        deciding = {start + len(phrase) - 1} | ({start} if negated else set())
        if rng.integers(0, 2):  # a negator out of scope: two or more words away
            free = [k for k in range(size) if words[k] in FILLER
                    and not start - 3 <= k <= start + len(phrase)]
            if free:
                words[free[rng.integers(0, len(free))]] = NEGATORS[rng.integers(0, 3)]
        ids[i, :size] = [index[w] for w in words]
        labels[i] = int(positive != negated)
        masks[i, sorted(deciding)] = True
    return ids, labels, masks


def load_text_transformer():
    """The shipped transformer text classifier (keras_hub's ``TokenAndPositionEmbedding``
    and ``TransformerEncoder``; ``examples/train_text_transformer.py``) and the
    vocabulary it shares with the Kim CNN: ``(model, vocabulary list)``. Needs the [hub]
    extra."""
    vocabulary = (SAVED_MODELS / "text_cnn.vocab.txt").read_text().splitlines()
    return load_model("text_transformer"), vocabulary


def load_text_model():
    """The shipped Kim-style text CNN and its vocabulary: ``(model, vocabulary list)``
    (``examples/train_text.py``; token 0 is padding, 1 out-of-vocabulary)."""
    vocabulary = (SAVED_MODELS / "text_cnn.vocab.txt").read_text().splitlines()
    return load_model("text_cnn"), vocabulary
