"""HiResCAM, LayerCAM, XGradCAM, contrastive Grad-CAM, Score-CAM and the input-gradient methods against references.

HiResCAM, LayerCAM, XGradCAM and the contrastive Grad-CAM: NumPy formulas on activations and gradients
from a `tf.GradientTape` written here over the user's own model. Score-CAM: the masked forward passes
redone here with plain model calls and NumPy. Integrated Gradients, SmoothGrad, Guided IG and Blur IG:
PAIR's `saliency.core` driven by a plain eager call-model function (same inputs and settings), plus IG's
formula and completeness checked with a tape.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import saliency.core as saliency
import tensorflow as tf
from helpers_models import linear_conv_model, random_image, tiny_seg_model

from explainers import ExplainerError, api, registry, scores
from explainers.methods import cams, methods_input, scorecam
from explainers.results import ALL_ZERO

NEW_CAMS = ("hirescam", "layercam", "xgradcam", "contrastive-gradcam")


@pytest.fixture(scope="module")
def model():
    return tiny_seg_model()


def _region(size: int = 16) -> np.ndarray:
    region = np.zeros((size, size), bool)
    region[3:10, 4:12] = True
    return region


def _close(ours, ref, tol=1e-4):
    scale = max(float(np.abs(ref).max()), 1e-12)
    np.testing.assert_allclose(ours, ref, atol=tol * scale, rtol=tol)


def _tape(model, layer, image, region, score_of):
    """Activations and gradients of `score_of(per-class region means (C,))`, float64 without batch axis."""
    tapped = keras.Model(model.input, [model.get_layer(layer).output, model.get_layer("logits").output])
    mask = tf.constant(region[None, ..., None].astype("float32"))
    with tf.GradientTape() as tape:
        acts, logits = tapped(tf.constant(image[None].astype("float32")), training=False)
        per_class = tf.reduce_mean(logits * mask, axis=(0, 1, 2))  # (C,): the adapter scores
        score = score_of(per_class)
    return acts[0].numpy().astype(np.float64), tape.gradient(score, acts)[0].numpy().astype(np.float64)


def np_hirescam(a, g):
    return np.maximum((a * g).sum(-1), 0)


def np_layercam(a, g):
    return np.maximum((a * np.maximum(g, 0)).sum(-1), 0)


def np_xgradcam(a, g):
    total = a.sum(axis=(0, 1))
    weights = np.divide((a * g).sum(axis=(0, 1)), total, out=np.zeros_like(total), where=total != 0)
    return np.maximum((a * weights).sum(-1), 0)


def np_gradcam(a, g):
    return np.maximum((a * g.mean(axis=(0, 1))).sum(-1), 0)


# ------------------------------------------------------------------------------------ method table


CHEAP = {"xrai": {"steps": 4, "batch_size": 4}, "integrated-gradients": {"steps": 6, "batch_size": 3},
         "guided-ig": {"steps": 6}, "blur-ig": {"steps": 6, "batch_size": 3}, "smoothgrad": {"samples": 3},
         "scorecam": {"channels": 5}, "rise": {"masks": 8}}


def test_every_method_through_explain(model) -> None:
    fractions = []
    out = api.explain(model, random_image(16, seed=1), _region(), 1, "conv2", methods=registry.ALL_METHODS,
                      options=CHEAP, progress=fractions.append)
    assert tuple(out) == registry.ALL_METHODS
    for method, e in out.items():
        assert e.method == method and e.heatmap.shape == (16, 16) and e.heatmap.dtype == np.float32
        assert e.heatmap.min() >= 0 and (np.isclose(e.heatmap.max(), 1) or e.has(ALL_ZERO))
        assert isinstance(e.options, registry.get(method).options)
        if registry.get(method).layer_free:
            assert e.layer is None and e.layer_map is None and "layer-free" in e.note
        else:
            assert e.layer == "conv2" and e.layer_map.shape == (16, 16)
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert out["hirescam"].seconds == out["gradcam"].seconds  # one shared pass


@pytest.mark.parametrize(("bad", "words"), [
    ({"scorecam": {"channels": 0}}, "Score-CAM.*channels"),
    ({"integrated-gradients": {"steps": 1}}, "steps.*at least 2"),
    ({"smoothgrad": {"noise": -1.0}}, "noise"),
    ({"rise": {"p": 0.0}}, "RISE.*p"),
    ({"seg-xres-cam": {"pool_size": 0}}, "pool_size"),
    ({"xrai": {"stpes": 3}}, "unknown option.*stpes.*steps"),
    ({"lime": {}}, "unknown method.*lime"),
])
def test_bad_settings_fail_before_work(model, bad, words, monkeypatch) -> None:
    from explainers import inputs

    monkeypatch.setattr(inputs, "prepare", lambda *a: pytest.fail("inputs checked before the options"))
    with pytest.raises(ExplainerError, match=words):
        api.explain(model, random_image(16), _region(), 1, "conv2", methods=registry.ALL_METHODS, options=bad)


def test_old_keywords_are_refused_with_the_new_spelling(model) -> None:
    with pytest.raises(ExplainerError, match=r"options=\{method"):
        api.explain(model, random_image(16), _region(), 1, "conv2", methods=("xrai",), xrai_steps=4)


# ------------------------------------------------------------------------------- gradient CAMs


@pytest.mark.parametrize("layer", ["conv1", "final_conv"])
@pytest.mark.parametrize("class_index", [0, 2])
def test_new_cams_match_numpy_formulas(model, layer: str, class_index: int) -> None:
    image, region = random_image(16, seed=3), _region()
    raw = cams.compute(model, image.astype("float32"), region, class_index, [layer], NEW_CAMS)[layer]
    a, g = _tape(model, layer, image, region, lambda s: s[class_index])
    _close(raw["hirescam"][0], np_hirescam(a, g))
    _close(raw["layercam"][0], np_layercam(a, g))
    _close(raw["xgradcam"][0], np_xgradcam(a, g))
    others = [n for n in range(3) if n != class_index]
    a, g = _tape(model, layer, image, region, lambda s: s[class_index] - tf.reduce_mean(tf.gather(s, others)))
    _close(raw["contrastive-gradcam"][0], np_gradcam(a, g))


def test_new_cams_share_the_pass_with_the_old_ones(model) -> None:
    image, region = random_image(16, seed=4), _region()
    both = api.explain(model, image, region, 2, "conv2", methods=("gradcam", *NEW_CAMS))
    alone = api.explain(model, image, region, 2, "conv2", methods=("gradcam",))
    np.testing.assert_allclose(both["gradcam"].heatmap, alone["gradcam"].heatmap, atol=1e-6)
    assert "contrastive score" in both["contrastive-gradcam"].description


def test_closed_forms_on_linear_model() -> None:
    """feat = (R, G), logit_0 = 2R − G, logit_1 = G; per-pixel gradients are 2/N, −1/N on the region.

    HiResCAM for class 0 is ReLU(2R − G) on the region and 0 outside; LayerCAM keeps only R (the G
    gradient is negative): 2R on the region. Contrastive class 0: J = S_0 − S_1 → logit 2R − 2G.
    """
    model = linear_conv_model(size=6)
    image = random_image(6, seed=5)
    region = np.zeros((6, 6), bool)
    region[1:4, 2:5] = True
    red, green = image[..., 0].astype(np.float64), image[..., 1].astype(np.float64)
    out = api.explain(model, image, region, 0, "feat", methods=NEW_CAMS)
    n = 36
    _close(out["hirescam"].layer_map, np.where(region, np.maximum(2 * red - green, 0) / n, 0), 1e-5)
    _close(out["layercam"].layer_map, np.where(region, 2 * red / n, 0), 1e-5)
    area = region.sum() / n**2
    _close(out["contrastive-gradcam"].layer_map, np.maximum(area * (2 * red - 2 * green), 0), 1e-5)


def test_element_weights_and_channel_weights_in_the_base_class() -> None:
    rng = np.random.default_rng(0)
    a = tf.constant(np.abs(rng.normal(size=(1, 4, 5, 3))), tf.float32)
    g = tf.constant(rng.normal(size=(1, 4, 5, 3)), tf.float32)
    a64, g64 = a.numpy()[0].astype(np.float64), g.numpy()[0].astype(np.float64)
    _close(cams.HiResCAM().layer_map(a, g).numpy()[0], np_hirescam(a64, g64))
    _close(cams.XGradCAM().layer_map(a, g).numpy()[0], np_xgradcam(a64, g64))
    zero_channel = tf.concat([tf.zeros_like(a[..., :1]), a[..., 1:]], axis=-1)
    assert np.all(np.isfinite(cams.XGradCAM().layer_map(zero_channel, g).numpy()))


def test_contrastive_score_with_one_class_is_the_class_score() -> None:
    one = tf.constant([[0.5], [2.0]])
    np.testing.assert_allclose(scores.contrastive_scores(one, tf.constant(0)).numpy(), [0.5, 2.0])
    three = tf.constant([[1.0, 2.0, 4.0]])
    np.testing.assert_allclose(scores.contrastive_scores(three, tf.constant(2)).numpy(), [4.0 - 1.5])


# ---------------------------------------------------------------------------------------- Score-CAM


def np_scorecam(model, layer, image, region, class_index, channels):
    """Score-CAM redone with plain model calls: top channels, min-max masks, softmax of region-mean increases."""
    acts = keras.Model(model.input, model.get_layer(layer).output)(image[None].astype("float32"))[0].numpy()
    logits_model = keras.Model(model.input, model.get_layer("logits").output)
    keep = np.argsort(-acts.mean(axis=(0, 1)), kind="stable")[:channels]
    up = tf.image.resize(acts[None][..., keep], image.shape[:2], method="bilinear")[0].numpy().astype(np.float64)
    masks = []
    for k in range(len(keep)):
        m = up[..., k]
        masks.append((m - m.min()) / (m.max() - m.min()) if m.max() > m.min() else np.zeros_like(m))
    inputs = np.stack([np.zeros_like(image, np.float64)] + [image * m[..., None] for m in masks]).astype("float32")
    logits = logits_model(inputs).numpy()[..., class_index].astype(np.float64)
    region_mean = logits[:, region].mean(axis=1)
    increase = region_mean[1:] - region_mean[0]
    weights = np.exp(increase - increase.max())
    weights /= weights.sum()
    return np.maximum((acts[..., keep].astype(np.float64) * weights).sum(-1), 0), keep, increase


@pytest.mark.parametrize(("layer", "channels"), [("conv2", 5), ("final_conv", 64)])
def test_scorecam_matches_reference(model, layer: str, channels: int) -> None:
    image, region = random_image(16, seed=6), _region()
    expected, keep, increase = np_scorecam(model, layer, image.astype(np.float64), region, 1, channels)
    fractions = []
    got = scorecam.scorecam_map(model, image, region, 1, layer, channels=channels, batch_size=2,
                                progress=fractions.append)
    _close(got.layer_map, expected, 1e-4)
    np.testing.assert_array_equal(got.channels, keep)
    np.testing.assert_allclose(got.increases, increase, rtol=1e-4, atol=1e-5)
    assert got.weights.sum() == pytest.approx(1.0) and len(got.channels) == min(channels, 8)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) == -(-len(keep) // 2)
    through_api = api.explain(model, image, region, 1, layer, methods=("scorecam",),
                              options={"scorecam": {"channels": channels}})
    np.testing.assert_allclose(through_api["scorecam"].layer_map, got.layer_map, atol=1e-6)
    assert through_api["scorecam"].options.channels == channels


def test_scorecam_batch_size_does_not_change_the_map(model) -> None:
    image, region = random_image(16, seed=8), _region()
    a = scorecam.scorecam_map(model, image, region, 0, "conv1", batch_size=1).layer_map
    b = scorecam.scorecam_map(model, image, region, 0, "conv1", batch_size=64).layer_map
    np.testing.assert_allclose(a, b, atol=1e-6)
    fn = scorecam._activations_function(model, "conv1", "logits")
    assert fn.experimental_get_tracing_count() == 1


# ------------------------------------------------------------------------------ input gradients


def plain_call(model, class_index, region):
    logits_model = keras.Model(model.input, model.get_layer("logits").output)
    mask = tf.constant(region[None].astype("float32"))

    def call(x_batch, call_model_args=None, expected_keys=None):
        x = tf.constant(np.asarray(x_batch, dtype="float32"))
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = tf.reduce_mean(logits_model(x, training=False)[..., class_index] * mask, axis=(1, 2))
        return {saliency.INPUT_OUTPUT_GRADIENTS: tape.gradient(score, x).numpy()}

    return call


@pytest.fixture(scope="module")
def smooth_image():
    rng = np.random.default_rng(2)
    img = np.zeros((16, 16, 3), np.uint8)
    img[:, :8] = (190, 60, 40)
    img[5:13, 6:14] = (40, 170, 80)
    return np.clip(img.astype(int) + rng.integers(-25, 25, img.shape), 0, 255).astype(np.uint8)


def _pair_reference(method, model, image, region, class_index, steps, samples, noise, seed):
    x, call, args = image.astype("float32"), plain_call(model, class_index, region), None
    if method == "integrated-gradients":
        return saliency.IntegratedGradients().GetMask(x, call, args, x_baseline=np.zeros_like(x), x_steps=steps,
                                                      batch_size=1)
    if method == "smoothgrad":
        np.random.seed(seed)  # noqa: NPY002  (PAIR draws its noise from the global generator)
        return saliency.GradientSaliency().GetSmoothedMask(x, call, args, stdev_spread=noise, nsamples=samples,
                                                           magnitude=False)
    if method == "guided-ig":
        return saliency.GuidedIG().GetMask(x, call, args, x_baseline=np.zeros_like(x), x_steps=steps,
                                           fraction=0.25, max_dist=0.02)
    return saliency.BlurIG().GetMask(x, call, args, max_sigma=50, steps=steps, grad_step=0.01, sqrt=False,
                                     batch_size=1)


@pytest.mark.parametrize("method", methods_input.INPUT_METHODS)
def test_input_methods_equal_pair_reference(model, smooth_image, method: str) -> None:
    region, steps, samples, noise, seed = _region(), 10, 4, 0.2, 7
    reference = np.asarray(_pair_reference(method, model, smooth_image, region, 2, steps, samples, noise, seed))
    ours = methods_input.attribution(model, smooth_image, region, 2, method, steps=steps, batch_size=4,
                                     samples=samples, noise=noise, seed=seed)
    assert ours.shape == smooth_image.shape
    _close(ours, reference, 2e-4)
    settings = ({"samples": samples, "noise": noise, "seed": seed} if method == "smoothgrad"
                else {"steps": steps, "batch_size": 4})
    heat = api.explain(model, smooth_image, region, 2, None, methods=(method,), options={method: settings})[method]
    expected = np.abs(reference).sum(-1)
    _close(heat.heatmap, expected / expected.max(), 2e-4)


def test_integrated_gradients_formula_and_completeness(model, smooth_image) -> None:
    region, steps = _region(), 64
    logits_model = keras.Model(model.input, model.get_layer("logits").output)
    mask = tf.constant(region[None].astype("float32"))
    x = smooth_image.astype(np.float64)
    alphas = np.linspace(0, 1, steps)
    path = tf.constant((alphas[:, None, None, None] * x[None]).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(path)
        scores = tf.reduce_mean(logits_model(path)[..., 0] * mask, axis=(1, 2))
    grads = tape.gradient(scores, path).numpy().astype(np.float64)
    expected = x * grads.mean(axis=0)
    ours = methods_input.attribution(model, smooth_image, region, 0, "integrated-gradients", steps=steps,
                                     batch_size=16)
    _close(ours, expected, 2e-4)
    gap = float(scores[-1] - scores[0])
    assert ours.sum() == pytest.approx(gap, rel=0.1, abs=1e-3 * abs(gap) + 1e-6)  # completeness (Riemann sum)


def test_smoothgrad_is_seeded_and_leaves_the_global_generator_alone(model, smooth_image) -> None:
    region = _region()
    np.random.seed(123)  # noqa: NPY002
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    a = methods_input.attribution(model, smooth_image, region, 1, "smoothgrad", samples=3, seed=5)
    assert np.array_equal(np.random.get_state()[1], before)  # noqa: NPY002
    b = methods_input.attribution(model, smooth_image, region, 1, "smoothgrad", samples=3, seed=5)
    c = methods_input.attribution(model, smooth_image, region, 1, "smoothgrad", samples=3, seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_guided_ig_numpy_shim_keeps_quantiles() -> None:
    values = np.random.default_rng(0).normal(size=101)
    shim = methods_input._NumpyWithLegacyQuantile()
    assert shim.quantile(values, 0.25, interpolation="lower") == np.quantile(values, 0.25, method="lower")
    assert shim.abs is np.abs


def test_input_methods_reuse_the_xrai_gradient(model, smooth_image, monkeypatch) -> None:
    from explainers.methods import xrai

    calls = []
    original = xrai.call_model_function

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(xrai, "call_model_function", spy)
    for method in methods_input.INPUT_METHODS:
        methods_input.attribution(model, smooth_image, _region(), 0, method, steps=3, samples=2)
    assert len(calls) == 4


# ---------------------------------------------------------------------------------- class overview


def test_class_overview_explains_each_predicted_class(model) -> None:
    image = random_image(16, seed=9)
    labels = api.predict(model, image).labels
    overview = api.class_overview(model, image, "gradcam", layer="conv2")
    assert sorted(overview) == [int(c) for c in np.unique(labels)]
    for class_index, e in overview.items():
        direct = api.explain(model, image, labels == class_index, class_index, "conv2", methods=("gradcam",))
        np.testing.assert_allclose(e.heatmap, direct["gradcam"].heatmap, atol=1e-6)
        assert f"class {class_index}" in e.description


def test_class_overview_skips_classes_with_no_pixels_and_checks_the_method() -> None:
    model = linear_conv_model(size=6)
    image = np.zeros((6, 6, 3), np.uint8)
    image[..., 0], image[..., 1] = 200, 50  # logit_0 = 2R − G > logit_1 = G everywhere: only class 0
    overview = api.class_overview(model, image, "integrated-gradients", options={"integrated-gradients": {"steps": 4}})
    assert list(overview) == [0] and overview[0].layer is None
    with pytest.raises(ExplainerError, match="lime"):
        api.class_overview(model, image, "lime")
    with pytest.raises(ExplainerError, match="one method"):
        api.class_overview(model, image, ["gradcam", "xrai"])
