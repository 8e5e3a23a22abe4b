"""The model-parameter randomisation check: the user's model untouched, the steps, and both measures
against independent NumPy computations written here."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_models import nested_backbone_model, random_image, sequential_seg_model, tiny_seg_model

import explainers
from explainers import randomization
from explainers.errors import ExplainerError


def _region(size: int) -> np.ndarray:
    region = np.zeros((size, size), bool)
    region[size // 4:size // 2, size // 4:size // 2] = True
    return region


# ---------------------------------------------------------------- independent references (NumPy only)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks by brute force: for each value, (#smaller) + (#equal + 1) / 2."""
    v = values.ravel()
    smaller = (v[None, :] < v[:, None]).sum(1)
    equal = (v[None, :] == v[:, None]).sum(1)
    return smaller + (equal + 1) / 2.0


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = _ranks(np.asarray(a, np.float64)), _ranks(np.asarray(b, np.float64))
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def _box_mean(x: np.ndarray, w: int) -> np.ndarray:
    """Mean over every w×w window (valid positions only), by explicit sums."""
    h, v = x.shape
    out = np.empty((h - w + 1, v - w + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = x[i:i + w, j:j + w].mean()
    return out


def _ssim(a: np.ndarray, b: np.ndarray, w: int = 7) -> float:
    """Wang et al. 2004 with a uniform w×w window, sample (co)variances, data range 1, the mean over
    the windows that lie wholly inside the image (what scikit-image averages)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    n = w * w
    mx, my = _box_mean(a, w), _box_mean(b, w)
    vx = (_box_mean(a * a, w) - mx * mx) * n / (n - 1)
    vy = (_box_mean(b * b, w) - my * my) * n / (n - 1)
    cxy = (_box_mean(a * b, w) - mx * my) * n / (n - 1)
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return float(s.mean())


def test_ssim_matches_the_formula_written_here():
    rng = np.random.default_rng(3)
    a = rng.random((20, 17))
    b = np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1)
    assert randomization.ssim(a, b) == pytest.approx(_ssim(a, b), abs=1e-9)
    assert randomization.ssim(a, a) == pytest.approx(1.0)
    small = rng.random((5, 6)), rng.random((5, 6))  # the window shrinks to the largest odd side that fits
    assert randomization.ssim(*small) == pytest.approx(_ssim(*small, w=5), abs=1e-9)
    with pytest.raises(ExplainerError):
        randomization.ssim(np.zeros((2, 2)), np.zeros((2, 2)))


def test_users_model_weights_are_bit_identical_after_a_check():
    model = tiny_seg_model(size=16)
    before = [w.copy() for w in model.get_weights()]
    image = random_image(16)
    original = explainers.explain(model, image, _region(16), 1, "conv2", ("gradcam",))["gradcam"].heatmap
    seen = []

    def unchanged_meanwhile(_fraction: float) -> None:  # also while the check runs, not only after it
        seen.append(all(a.tobytes() == b.tobytes() for a, b in zip(before, model.get_weights(), strict=True)))

    result = explainers.randomization_check(model, image, _region(16), 1, "conv2", ("gradcam", "gradcam++"),
                                            progress=unchanged_meanwhile)
    assert len(seen) >= len(result.steps) and all(seen)
    after = model.get_weights()
    assert len(before) == len(after)
    for a, b in zip(before, after, strict=True):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    # and the model still explains as before (no compiled function of it bound to random weights)
    again = explainers.explain(model, image, _region(16), 1, "conv2", ("gradcam",))["gradcam"].heatmap
    np.testing.assert_array_equal(original, again)
    np.testing.assert_array_equal(result.original["gradcam"], original)


@pytest.mark.parametrize("build", [tiny_seg_model, sequential_seg_model, nested_backbone_model])
def test_steps_and_measures_on_every_kind_of_model(build):
    model = build()
    size = model.input_shape[1]
    image = random_image(size, seed=2)
    labels = explainers.predict(model, image).labels
    cls = int(np.bincount(labels.ravel()).argmax())
    region = labels == cls
    engine = randomization.engine_for(model)
    names = engine.weighted_layers()
    result = explainers.randomization_check(model, image, region, cls, methods=("gradcam", "hirescam"),
                                            max_steps=4, seed=1)
    # steps: cumulative from the output, one entry per step, covering every weighted layer at the end
    assert len(result.steps) == len(result.groups) == min(4, len(names))
    assert list(result.steps[-1]) == names
    for k in range(1, len(result.steps)):
        assert result.steps[k][:len(result.steps[k - 1])] == result.steps[k - 1]
    assert result.steps[0][0] == names[0]
    for m in ("gradcam", "hirescam", randomization.RANDOM):
        assert len(result.spearman[m]) == len(result.ssim[m]) == len(result.steps)
    for m in ("gradcam", "hirescam"):
        for k, heat in enumerate(result.maps[m]):
            assert result.spearman[m][k] == pytest.approx(_spearman(result.original[m], heat), abs=1e-9)
            assert result.ssim[m][k] == pytest.approx(_ssim(result.original[m], heat, 7), abs=1e-9)
    assert all(abs(r) < 0.3 for r in result.spearman[randomization.RANDOM])  # noise against noise


def test_cascading_and_independent_randomise_exactly_the_named_layers():
    model = tiny_seg_model(size=16)
    engine = randomization.engine_for(model)
    names = engine.weighted_layers()
    assert names == ["logits", "final_conv", "conv2", "conv1"]  # output first; Rescaling has no weights
    trained = {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers}
    copy = engine.randomized(["logits", "final_conv"], seed=0)
    assert copy is not model
    for layer in copy.layers:
        got = layer.get_weights()
        same = all(np.array_equal(a, b) for a, b in zip(got, trained[layer.name], strict=True))
        assert same == (layer.name not in ("logits", "final_conv")), layer.name
    kernel = copy.get_layer("final_conv").get_weights()[0].copy()
    engine.randomized(["final_conv"], seed=0)  # the same layer and seed: the same random values
    np.testing.assert_array_equal(copy.get_layer("final_conv").get_weights()[0], kernel)
    assert np.array_equal(copy.get_layer("logits").get_weights()[0], trained["logits"][0])
    independent = explainers.randomization_check(model, random_image(16), _region(16), 1, "conv2", ("gradcam",),
                                                 mode="independent")
    assert independent.steps == [("logits",), ("final_conv",), ("conv2",), ("conv1",)]


def test_deterministic_for_a_seed_and_different_for_another():
    model = tiny_seg_model(size=16)
    image, region = random_image(16, seed=5), _region(16)
    one = explainers.randomization_check(model, image, region, 1, "conv2", ("gradcam",), seed=3)
    two = explainers.randomization_check(model, image, region, 1, "conv2", ("gradcam",), seed=3)
    other = explainers.randomization_check(model, image, region, 1, "conv2", ("gradcam",), seed=4)
    assert one.spearman == two.spearman and one.ssim == two.ssim
    assert one.spearman != other.spearman


def test_grouping_into_steps_for_big_models():
    names = [f"layer{i}" for i in range(18)]
    groups = randomization.group_layers(names, 5)
    assert len(groups) == 5 and [n for g in groups for n in g] == names
    assert max(map(len, groups)) - min(map(len, groups)) <= 1
    assert randomization.group_layers(names[:3], 5) == [("layer0",), ("layer1",), ("layer2",)]
    assert len(randomization.group_layers(names, None)) == 18


def test_verdict_thresholds():
    assert randomization.verdict("a", [0.9, 0.6, 0.51]).text == randomization.BARELY
    assert randomization.verdict("a", [0.9, 0.49, 0.7]).changes
    assert randomization.verdict("a", [0.9, 0.49]).text == randomization.CHANGES


def test_bad_arguments_are_refused_with_a_sentence():
    model = tiny_seg_model(size=16)
    with pytest.raises(ExplainerError, match="mode"):
        explainers.randomization_check(model, random_image(16), _region(16), 1, mode="sideways")
    with pytest.raises(ExplainerError, match="engine"):
        randomization.engine_for(object())
