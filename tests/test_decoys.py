"""The decoy engine: invariants of every decoy, exact cropping, aggregation, DANCE maps."""

import keras
import numpy as np
import pytest
from helpers import assert_unchanged, snapshot

import keras_dance as kd
from keras_dance import aggregate
from keras_dance.decoys import masks as masks_lib
from keras_dance.decoys import receptive_field as rf


def image_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12, 12, 2))
    h = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="conv1")(inputs)
    h = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="conv2")(h)
    h = keras.layers.Flatten()(h)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(h))


def sequence_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((20, 4))
    h = keras.layers.Conv1D(6, 5, padding="valid", activation="relu", name="conv1")(inputs)
    h = keras.layers.MaxPooling1D(2, name="pool")(h)
    h = keras.layers.Conv1D(6, 3, padding="same", activation="relu", name="conv2")(h)
    h = keras.layers.GlobalMaxPooling1D()(h)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(h))


def vector_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((10,))
    h = keras.layers.Dense(8, activation="tanh", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, name="out")(h))


CASES = {
    "image": (image_model, kd.DecoyConfig(layer="conv2", patch=3, steps=25), (12, 12, 2)),
    "sequence": (sequence_model, kd.DecoyConfig(layer="conv2", patch=4, stride=3, steps=25,
                                                tau=0.3), (20, 4)),
    "vector": (vector_model, kd.DecoyConfig(layer="hidden", patch=2, steps=25, epsilon=0.05),
               (10,)),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_decoy_satisfies_the_constraints(case, seed):
    make, config, shape = CASES[case]
    config = kd.DecoyConfig.from_config({**config.get_config(), "seed": seed})
    model = make()
    explainer = kd.Explainer(model, decoys=config, batch_size=37)
    x = np.random.default_rng(seed).uniform(size=(3,) + shape).astype(np.float32)
    decoys, feasible = explainer.generate_decoys(x)
    engine = explainer.decoys
    assert decoys.shape == (3, engine.num_decoys) + shape
    assert feasible.shape == (3, engine.num_decoys) and feasible.dtype == bool
    sub = engine.sub_model
    masks = masks_lib.patch_masks(engine.spatial_shape, engine.starts, engine.patch)
    for b in range(3):
        base = sub(x[b:b + 1]).numpy()
        epsilon = config.epsilon * np.abs(base).max()
        layer = sub(decoys[b]).numpy()
        change = np.abs(layer - base).reshape(len(layer), -1).max(axis=1)
        # Recomputed on the full sub-model: within ε, 1e-5 relative (float32 conv order).
        assert np.all(change <= epsilon * (1 + 1e-5) + 1e-7), change.max() / epsilon
        assert decoys[b].min() >= 0.0 and decoys[b].max() <= 1.0
        delta = decoys[b] - x[b]
        if config.tau is not None:
            assert np.abs(delta).max() <= config.tau + 1e-7
        for j in range(engine.num_decoys):
            inside = masks[j // 2]
            if len(shape) > 1:
                inside = np.broadcast_to(inside[..., None], shape)
            np.testing.assert_array_equal(decoys[b, j][~inside], x[b][~inside])  # bit for bit
        # Up-decoys push their patch up and down-decoys push it down, on average.
        pushed = [np.sign(delta[j][np.broadcast_to(masks[j // 2][..., None] if len(shape) > 1
                                                   else masks[j // 2], shape)].sum())
                  for j in range(engine.num_decoys)]
        assert np.mean(np.array(pushed[0::2]) >= 0) > 0.9
        assert np.mean(np.array(pushed[1::2]) <= 0) > 0.9
    # The problems are not trivial: decoys move their patches.
    assert np.abs(decoys - x[:, None]).max() > 0.05
    assert feasible.mean() > 0.9


def test_same_seed_same_maps_and_decoys():
    model = image_model()
    config = kd.DecoyConfig(layer="conv2", patch=3, steps=20, seed=4)
    x = np.random.default_rng(0).uniform(size=(2, 12, 12, 2)).astype(np.float32)
    first = kd.Explainer(model, decoys=config).explain(x)
    second = kd.Explainer(model, decoys=config).explain(x)
    np.testing.assert_array_equal(first, second)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["gradient", kd.methods.SmoothGrad(num_samples=3)])
def test_dance_batched_equals_unbatched(method):
    model = image_model()
    config = kd.DecoyConfig(layer="conv2", patch=4, steps=15)
    x = np.random.default_rng(1).uniform(size=(3, 12, 12, 2)).astype(np.float32)
    reference = np.concatenate(
        [kd.Explainer(model, method, decoys=config, batch_size=1).explain(x[i:i + 1])
         for i in range(3)])
    for batch_size in (7, 18, 100):
        maps = kd.Explainer(model, method, decoys=config, batch_size=batch_size).explain(x)
        # The solver's batch composition changes conv arithmetic by float32 rounding,
        # which can flip a borderline feasibility decision; maps agree to 1e-4.
        np.testing.assert_allclose(maps, reference, rtol=1e-4, atol=1e-5,
                                   err_msg=f"batch_size={batch_size}")


def test_compiled_equals_xla():
    model = image_model()
    config = kd.DecoyConfig(layer="conv2", patch=4, steps=15)
    x = np.random.default_rng(2).uniform(size=(2, 12, 12, 2)).astype(np.float32)
    graph = kd.Explainer(model, decoys=config).explain(x)
    xla = kd.Explainer(model, decoys=config, jit_compile=True).explain(x)
    # XLA fuses the convolutions differently (float32 rounding), same solver decisions.
    np.testing.assert_allclose(xla, graph, rtol=1e-3, atol=1e-4)


def test_linear_model_gives_a_zero_range_map_and_a_warning():
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(4, name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(hidden))
    model.get_layer("out").set_weights([np.ones((4, 3), np.float32), np.zeros(3, np.float32)])
    explainer = kd.Explainer(model, decoys=kd.DecoyConfig(layer="hidden", patch=2, steps=10))
    x = np.random.default_rng(1).uniform(size=(2, 6)).astype(np.float32)
    with pytest.warns(UserWarning, match="identically zero"):
        maps = explainer.explain(x)
    np.testing.assert_array_equal(maps, 0.0)


def test_known_nonlinear_case_gives_a_nonzero_range():
    # f(x) = x0 · x1 through a squaring layer l: the decoys move the patch {x0, x1} and
    # the gradient (x1, x0) changes with them (Theorem 1: the Hessian is nonzero).
    inputs = keras.Input((2,))
    square = keras.layers.Lambda(lambda t: t * t[:, ::-1], name="product")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, use_bias=False, name="out")(square))
    model.get_layer("out").set_weights([np.array([[0.5], [0.5]], np.float32)])
    config = kd.DecoyConfig(layer="product", patch=2, epsilon=0.2, steps=40)
    explainer = kd.Explainer(model, decoys=config)
    x = np.array([[0.5, 0.5]], np.float32)
    maps, details = explainer.explain(x, targets=0, return_details=True)
    assert np.all(maps > 0.01)
    decoys, feasible = explainer.generate_decoys(x)
    # Range of the gradient (x1, x0) over the decoys, by hand.
    grads = decoys[0][:, ::-1]
    np.testing.assert_allclose(maps[0], grads.max(0) - grads.min(0), rtol=1e-5)
    assert details["num_decoys"][0] == 2 and details["feasible_fraction"][0] == 1.0


def test_mean_aggregation_and_constant_decoys():
    model = image_model()
    x = np.random.default_rng(3).uniform(size=(2, 12, 12, 2)).astype(np.float32)
    config = kd.DecoyConfig(layer="conv2", patch=4, steps=10)
    explainer = kd.Explainer(model, decoys=config, aggregation="mean")
    decoys, _ = explainer.generate_decoys(x)
    targets = explainer.predict_classes(x)
    plain = kd.Explainer(model)
    expected = np.stack([plain.explain(decoys[b], np.full(len(decoys[b]), targets[b])).mean(0)
                         for b in range(2)])
    np.testing.assert_allclose(explainer.explain(x), expected, rtol=1e-4, atol=1e-6)

    constant = kd.Explainer(model, decoys=kd.DecoyConfig(layer="conv2", patch=4, kind="constant"))
    decoys, feasible = constant.generate_decoys(x)
    assert decoys.shape[1] == constant.decoys.num_patches == 9 and feasible.all()
    mean = x[0].mean(axis=(0, 1))
    np.testing.assert_allclose(decoys[0, 0, :4, :4], np.broadcast_to(mean, (4, 4, 2)), rtol=1e-6)
    np.testing.assert_array_equal(decoys[0, 0, 4:], x[0, 4:])
    maps = constant.explain(x)
    grads = np.stack([plain.explain(decoys[b], np.full(9, targets[b])) for b in range(2)])
    np.testing.assert_allclose(maps, grads.max(1) - grads.min(1), rtol=1e-4, atol=1e-6)


def _patch_range_reference(decoy_maps, engine):
    """NumPy: per feature, |max − min| over each covering patch's two decoys, averaged."""
    covers = masks_lib.patch_masks(engine.spatial_shape, engine.starts, engine.patch)
    if decoy_maps.ndim > covers.ndim:  # channels
        covers = covers[..., None]
    pairs = decoy_maps.reshape((-1, 2) + decoy_maps.shape[1:])
    ranges = pairs.max(1) - pairs.min(1)
    return (ranges * covers).sum(0) / np.broadcast_to(covers, ranges.shape).sum(0)


@pytest.mark.parametrize("case, patch, stride, batch_size", [
    ("image", 4, 2, 7),      # half-overlapping patches; 7 rows: chunks split to whole patches
    ("image", 4, None, 128),
    ("sequence", 5, 3, 5),
    ("vector", 3, 2, 3),
])
@pytest.mark.slow
def test_patch_range_against_numpy(case, patch, stride, batch_size):
    make, config, shape = CASES[case]
    config = kd.DecoyConfig.from_config(
        {**config.get_config(), "patch": patch, "stride": stride, "steps": 8})
    model = make()
    explainer = kd.Explainer(model, decoys=config, aggregation="patch_range",
                             batch_size=batch_size)
    assert explainer._dance.decoys_per_map_pass % 2 == 0
    x = np.random.default_rng(5).uniform(size=(2,) + shape).astype(np.float32)
    targets = explainer.predict_classes(x)
    decoys, _ = explainer.generate_decoys(x)
    plain = kd.Explainer(model)
    expected = np.stack([
        _patch_range_reference(plain.explain(decoys[b], np.full(len(decoys[b]), targets[b])),
                               explainer.decoys) for b in range(len(x))])
    maps = explainer.explain(x, targets)
    np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-6)
    assert np.all(maps >= 0) and maps.max() > 0
    # The pure function agrees with the streaming reducer.
    covers = masks_lib.patch_masks(explainer.decoys.spatial_shape, explainer.decoys.starts,
                                   explainer.decoys.patch)
    covers = covers[..., None] if len(shape) > 1 else covers
    decoy_maps = plain.explain(decoys[0], np.full(len(decoys[0]), targets[0]))
    np.testing.assert_allclose(aggregate.patch_range_aggregate(decoy_maps, covers), expected[0],
                               rtol=1e-5, atol=1e-7)


def test_patch_range_differs_from_range_and_needs_two_decoys_per_patch():
    model = image_model()
    x = np.random.default_rng(6).uniform(size=(1, 12, 12, 2)).astype(np.float32)
    config = kd.DecoyConfig(layer="conv2", patch=4, steps=8)
    per_patch = kd.Explainer(model, decoys=config, aggregation="patch_range").explain(x)
    overall = kd.Explainer(model, decoys=config, aggregation="range").explain(x)
    # Each feature's range over its own patch's decoys is one of the ranges "range" takes.
    assert np.all(per_patch <= overall + 1e-6) and not np.allclose(per_patch, overall)
    with pytest.raises(ValueError, match="kind='optimized'"):
        kd.Explainer(model, decoys=kd.DecoyConfig(layer="conv2", patch=4, kind="constant"),
                     aggregation="patch_range")


@pytest.mark.parametrize("case, kind", [("image", "optimized"), ("vector", "optimized"),
                                        ("image", "constant")])
def test_solver_patch_values_and_the_decoy_images_they_make(case, kind):
    make, config, shape = CASES[case]
    config = kd.DecoyConfig.from_config({**config.get_config(), "steps": 5, "kind": kind})
    engine = kd.Explainer(make(), decoys=config).decoys
    x = np.random.default_rng(4).uniform(size=(2,) + shape).astype(np.float32)
    pairs = min(6, engine.num_decoys)
    values, found, change = (t.numpy() for t in engine.solve(x, 0, pairs))
    patch_shape = tuple(engine.patch) + (shape[-1] if len(shape) > 1 else 1,)
    assert values.shape == (pairs, 2) + patch_shape and found.shape == change.shape == (pairs, 2)
    decoys = engine.decoy_images(x, 0, values).numpy()
    assert decoys.shape == (pairs, 2) + shape
    x_model = x if len(shape) > 1 else x[..., None]
    for j in range(pairs):
        start = engine.starts[j // 2 if kind == "optimized" else j]
        window = tuple(slice(s, s + p) for s, p in zip(start, engine.patch))
        for b in range(2):
            decoy = decoys[j, b] if len(shape) > 1 else decoys[j, b][..., None]
            np.testing.assert_array_equal(decoy[window], values[j, b])  # written exactly
            outside = decoy.copy()
            outside[window] = x_model[b][window]
            np.testing.assert_array_equal(outside, x_model[b])  # and nothing else
            np.testing.assert_allclose(
                change[j, b], np.abs(values[j, b] - x_model[b][window]).mean(), rtol=1e-5)
    # A slice of the values, with its first pair, writes the same decoys.
    np.testing.assert_array_equal(engine.decoy_images(x, 2, values[2:5]).numpy(), decoys[2:5])


def test_dance_leaves_the_model_unchanged():
    model = image_model()
    before = snapshot(model)
    explainer = kd.Explainer(model, "integrated_gradients",
                             decoys=kd.DecoyConfig(layer="conv2", patch=4, steps=5))
    explainer.explain(np.random.default_rng(0).uniform(size=(1, 12, 12, 2)).astype(np.float32))
    assert_unchanged(model, before)


# ------------------------------------------------------------------ cropping


def _crop_models():
    keras.utils.set_random_seed(0)

    def build(layers, shape=(17, 15, 2)):
        inputs = keras.Input(shape)
        h = inputs
        for layer in layers:
            h = layer(h)
        out = keras.layers.Dense(2)(keras.layers.Flatten()(h))
        return keras.Model(inputs, out), layers[-1].name

    L = keras.layers

    def graph(shape, body):
        inputs = keras.Input(shape)
        h = body(inputs)
        out = keras.layers.Dense(2)(keras.layers.Flatten()(h))
        return keras.Model(inputs, out), "l"

    def residual_projection(x):  # ResNet: a strided branch and a 1×1 strided shortcut
        h = L.ZeroPadding2D(1)(x)
        h = L.Conv2D(4, 3, strides=2, activation="relu")(h)
        h = L.Conv2D(6, 3, padding="same")(h)
        shortcut = L.Conv2D(6, 1, strides=2)(x)
        return L.Add(name="l")([h, shortcut])

    def inverted_residual(x):  # MobileNetV2: expand, depthwise, project, add
        x = L.Rescaling(1 / 127.5, offset=-1)(x)
        x = L.Conv2D(4, 3, strides=2, padding="same")(x)
        h = L.Conv2D(8, 1, activation="relu")(x)
        h = L.DepthwiseConv2D(3, padding="same")(h)
        h = L.BatchNormalization()(h)
        h = L.Conv2D(4, 1)(h)
        return L.Add(name="l")([x, h])

    def dense_block(x):  # DenseNet: concatenations on the channel axis, average pooling
        x = L.Normalization(mean=0.5, variance=0.1)(x)
        x = L.Conv2D(4, 3, padding="valid")(x)
        for _ in range(2):
            h = L.Conv2D(3, 3, padding="same", activation="relu")(x)
            x = L.Concatenate()([x, h])
        h = L.AveragePooling2D(2)(x)
        return L.SeparableConv2D(4, 3, padding="same", name="l")(h)

    return {
        "dag_residual_projection": graph((19, 22, 2), residual_projection),
        "dag_inverted_residual": graph((21, 20, 3), inverted_residual),
        "dag_dense_block": graph((34, 31, 2), dense_block),
        "same_stride2": build([L.Conv2D(4, 3, padding="same", activation="relu"),
                               L.Conv2D(4, 3, strides=2, padding="same", name="l")]),
        "valid_pool": build([L.Conv2D(4, 3, padding="valid", activation="relu"),
                             L.MaxPooling2D(2), L.Conv2D(4, 3, padding="same", name="l")],
                            shape=(37, 34, 2)),
        "stride2_valid_dilated": build([L.Conv2D(4, 3, strides=2, padding="valid"),
                                        L.BatchNormalization(), L.ReLU(),
                                        L.Conv2D(4, 3, dilation_rate=2, padding="same", name="l")],
                                       shape=(41, 40, 1)),
        "zero_padding_odd_sizes": build([L.ZeroPadding2D(((1, 2), (0, 1))),
                                         L.Conv2D(3, 4, strides=2),
                                         L.AveragePooling2D(2, padding="same", name="l")],
                                        shape=(29, 27, 1)),
        "same_stride2_odd": build([L.Conv2D(3, 5, strides=2, padding="same"),
                                   L.MaxPooling2D(3, strides=2, padding="same", name="l")],
                                  shape=(31, 29, 1)),
    }


@pytest.mark.parametrize("name", sorted(_crop_models()))
def test_cropped_constraint_equals_the_full_one(name):
    model, layer = _crop_models()[name]
    config = kd.DecoyConfig(layer=layer, patch=3, stride=2)
    engine = kd.Explainer(model, decoys=config).decoys
    assert engine.cropping, engine.reason
    plan = engine.crop_plan
    assert plan.fraction < 1.0
    rng = np.random.default_rng(0)
    shape = engine.input_shape
    x = rng.uniform(size=(1,) + shape).astype(np.float32)
    masks = masks_lib.patch_masks(engine.spatial_shape, engine.starts, engine.patch)[..., None]
    # Every patch, borders included: perturb it, evaluate cropped and full.
    perturbed = np.where(masks, rng.uniform(size=masks.shape[:1] + shape), x).astype(np.float32)
    full = engine.sub_model(perturbed).numpy()
    base = engine.sub_model(x).numpy()[0]
    for i in range(engine.num_patches):
        window = tuple(slice(o, o + n) for o, n in zip(plan.offsets[i], plan.crop_shape))
        crop = engine.sub_model(perturbed[(i,) + window][None]).numpy()[0]
        index = np.argwhere(plan.footprints[i])
        full_index = index + plan.output_offsets[i]
        np.testing.assert_allclose(crop[tuple(index.T)], full[i][tuple(full_index.T)],
                                   rtol=1e-5, atol=1e-5)
        outside = np.ones(full.shape[1:-1], bool)
        outside[tuple(full_index.T)] = False
        np.testing.assert_allclose(full[i][outside], base[outside], rtol=1e-5, atol=1e-5)


def test_non_local_layers_use_the_full_input():
    inputs = keras.Input((30, 30, 1))
    h = keras.layers.Conv2D(2, 3, name="c")(inputs)
    h = keras.layers.Cropping2D(((1, 0), (0, 1)), name="crop")(h)
    h = keras.layers.Conv2D(2, 3, name="c2")(h)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(h)))
    engine = kd.Explainer(model, decoys=kd.DecoyConfig(layer="c2", patch=2)).decoys
    assert not engine.cropping and "'crop'" in engine.reason
    engine = kd.Explainer(vector_model(), decoys=kd.DecoyConfig(layer="hidden", patch=2)).decoys
    assert not engine.cropping and "full input" in engine.reason
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(2, 3, name="c")(inputs)
    h = keras.layers.Flatten(name="flat")(h)
    model = keras.Model(inputs, keras.layers.Dense(2, name="d")(h))
    engine = kd.Explainer(model, decoys=kd.DecoyConfig(layer="d", patch=2)).decoys
    assert not engine.cropping and "'flat'" in engine.reason


def test_receptive_field_geometry_against_brute_force():
    ops = [rf.AxisOp(3, 1, "same"), rf.AxisOp(2, 2, "valid"), rf.AxisOp(3, 2, "same")]
    geometry = rf.AxisGeometry.build(ops, 21)

    def receptive(position):
        # Walk back through the layers with explicit index arithmetic.
        lo = hi = position
        sizes = [21]
        for op in ops[:-1]:
            sizes.append(op.output_size(sizes[-1]))
        for op, size in zip(reversed(ops), reversed(sizes)):
            pad = op.pad_before(size)
            lo, hi = lo * op.stride - pad, hi * op.stride - pad + op.kernel - 1
        return lo, hi

    for q in range(geometry.output_size):
        lo, hi = receptive(q)
        assert (lo, hi + 1) == (q * geometry.jump - geometry.offset,
                                q * geometry.jump - geometry.offset + geometry.field)


def test_patch_grid_covers_every_position():
    assert masks_lib.patch_starts(10, 3, 3) == [0, 3, 6, 7]
    assert masks_lib.patch_starts(9, 3, 3) == [0, 3, 6]
    grid = masks_lib.patch_grid((5, 7), (2, 3), (2, 3))
    masks = masks_lib.patch_masks((5, 7), grid, (2, 3))
    assert masks.any(axis=0).all()
    assert masks.sum(axis=(1, 2)).tolist() == [6] * len(grid)


def test_aggregation_identities():
    rng = np.random.default_rng(0)
    one = rng.normal(size=(4, 5)).astype(np.float32)
    copies = np.stack([one] * 6)
    np.testing.assert_array_equal(aggregate.range_aggregate(copies), np.zeros_like(one))
    np.testing.assert_allclose(aggregate.mean_aggregate(copies), one, rtol=1e-6)
    maps = rng.normal(size=(7, 4, 5)).astype(np.float32)
    assert np.all(aggregate.range_aggregate(maps).numpy() >= 0)
    for name in ("range", "mean"):  # patch_range: test_patch_range_against_numpy
        reducer = aggregate.Reducer(name)
        state = reducer.merge(reducer.merge(reducer.init(one), reducer.partial(maps[:3])),
                              reducer.partial(maps[3:]))
        expected = (aggregate.range_aggregate if name == "range" else aggregate.mean_aggregate)(maps)
        # Chunked sums add in another order: float32 rounding.
        np.testing.assert_allclose(reducer.result(state, 7), expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ bad configurations


@pytest.mark.parametrize("kwargs, message", [
    (dict(patch=0), "patch"),
    (dict(stride=0), "stride"),
    (dict(epsilon=0), "epsilon"),
    (dict(epsilon=-1.0), "epsilon"),
    (dict(value_range=(1.0, 0.0)), "value_range"),
    (dict(tau=0.0), "tau"),
    (dict(steps=0), "steps"),
    (dict(kind="noise"), "kind"),
    (dict(multiplier_growth=1.0), "multiplier_growth"),
])
def test_bad_decoy_configs(kwargs, message):
    with pytest.raises(ValueError, match=f"Expected `{message}`"):
        kd.DecoyConfig(layer="conv2", **kwargs)


def test_bad_decoy_use():
    model = image_model()
    with pytest.raises(ValueError, match=r"Expected `patch` <= the input's spatial shape"):
        kd.Explainer(model, decoys=kd.DecoyConfig(layer="conv2", patch=13))
    with pytest.raises(ValueError, match=r"in call order: .*conv1, conv2.*Received: layer='conv9'"):
        kd.Explainer(model, decoys=kd.DecoyConfig(layer="conv9"))
    with pytest.raises(ValueError, match="not an input layer"):
        kd.Explainer(model, decoys=kd.DecoyConfig(layer=0))
    with pytest.raises(ValueError, match="one value per spatial axis"):
        kd.Explainer(model, decoys=kd.DecoyConfig(layer="conv2", patch=(2, 2, 2)))
    with pytest.raises(ValueError, match="aggregation"):
        kd.Explainer(model, decoys=kd.DecoyConfig(layer="conv2"), aggregation="median")
    with pytest.raises(TypeError, match="decoys"):
        kd.Explainer(model, decoys={"layer": "conv2"})
    explainer = kd.Explainer(model, decoys=kd.DecoyConfig(layer="conv2", patch=4, steps=2))
    with pytest.raises(ValueError, match=r"inside the decoys' value_range \(0.0, 1.0\)"):
        explainer.explain(np.full((1, 12, 12, 2), 1.5, np.float32))


def test_config_round_trip():
    config = kd.DecoyConfig(layer=3, patch=(2, 3), stride=(1, 2), tau=0.1, relative_epsilon=False)
    assert kd.DecoyConfig.from_config(config.get_config()) == config
    with pytest.raises(dataclass_error()):
        config.steps = 3


def dataclass_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_tabular_feature_groups_as_swappable_features():
    # Breast-cancer MLP: columns ordered so that a patch of 3 is one measurement's
    # (mean, error, worst) — ten groups, twenty decoys, every constraint held.
    model = kd.datasets.load_model("cancer_mlp")
    x = kd.datasets.load_cancer()[2][:2]
    config = kd.DecoyConfig(layer="hidden1", patch=3, steps=20)
    explainer = kd.Explainer(model, decoys=config)
    assert explainer.decoys.num_patches == 10 and not explainer.decoys.cropping
    decoys, feasible = explainer.generate_decoys(x)
    sub = explainer.decoys.sub_model
    for b in range(2):
        base = sub(x[b:b + 1]).numpy()
        change = np.abs(sub(decoys[b]).numpy() - base).max(axis=1)
        assert np.all(change <= config.epsilon * np.abs(base).max() * (1 + 1e-5) + 1e-7)
        for j in range(20):
            outside = np.ones(30, bool)
            outside[3 * (j // 2):3 * (j // 2) + 3] = False
            np.testing.assert_array_equal(decoys[b, j][outside], x[b][outside])
    maps = explainer.explain(x)
    assert maps.shape == x.shape and np.abs(maps).max() > 0
