"""Reliability of the explainers API under fuzzed input and concurrent callers.

Every call either returns finite maps of the right shape or raises the project's own error type;
threads sharing one cached model get exactly the maps a single caller gets.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import explainers
from explainers import ExplainerError
from tests.helpers_models import dynamic_size_model, tiny_seg_model

SIZE = 16
CAMS = ("gradcam", "gradcam++", "vinogradova")
LAYERS = ("conv1", "conv2", "final_conv", "logits", "softmax", "rescale", "no_such_layer")

MODEL = tiny_seg_model(SIZE)


def _image(seed: int, shape=(SIZE, SIZE, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _check(result: dict[str, explainers.Explanation], methods, shape) -> None:
    assert list(result) == list(methods)
    for explanation in result.values():
        heatmap = explanation.heatmap
        assert heatmap.shape == shape
        assert heatmap.dtype == np.float32
        assert np.all(np.isfinite(heatmap))
        assert heatmap.min() >= 0
        assert heatmap.max() == pytest.approx(1.0) or heatmap.max() == 0
        if heatmap.max() == 0:
            assert "zero" in explanation.note


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    region_bits=st.integers(0, 2**20),
    class_index=st.integers(-2, 5),
    layer=st.sampled_from(LAYERS),
    methods=st.lists(st.sampled_from(CAMS), min_size=1, max_size=3, unique=True),
    constant=st.booleans(),
)
def test_fuzzed_calls_give_finite_maps_or_a_clear_error(seed, region_bits, class_index, layer, methods, constant):
    rng = np.random.default_rng(region_bits)
    image = np.full((SIZE, SIZE, 3), seed % 256, np.uint8) if constant else _image(seed)
    region = rng.random((SIZE, SIZE)) < (region_bits % 5) / 8  # 0 → empty region
    try:
        result = explainers.explain(MODEL, image, region, class_index, layer, methods=methods)
    except ExplainerError as error:
        assert str(error).strip(), "the error must say what to change"
        assert (
            not region.any()
            or not 0 <= class_index < 3
            or layer in ("no_such_layer", "softmax", "rescale")
        ), f"unexpected refusal: {error}"
        return
    assert region.any() and 0 <= class_index < 3
    _check(result, methods, (SIZE, SIZE))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(height=st.integers(1, 40), width=st.integers(1, 40), channels=st.sampled_from([1, 2, 3, 4]))
def test_images_of_any_shape_are_fitted_or_refused(height, width, channels):
    raw = _image(height * width, (height, width, channels))
    try:
        image = explainers.fit_image(MODEL, raw)
    except ExplainerError as error:
        assert channels == 2, f"unexpected refusal of {raw.shape}: {error}"
        return
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    region = np.zeros((SIZE, SIZE), bool)
    region[4:9, 4:9] = True
    _check(explainers.explain(MODEL, image, region, 1, "conv2", methods=CAMS), CAMS, (SIZE, SIZE))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(height=st.integers(8, 33), width=st.integers(8, 33))
def test_dynamic_size_model_explains_at_the_image_size(height, width):
    model = _DYNAMIC
    image = explainers.fit_image(model, _image(height + width, (height, width, 3)))
    region = np.zeros(image.shape[:2], bool)
    region[: height // 2, : width // 2] = True
    result = explainers.explain(model, image, region, 0, explainers.default_layer(model), methods=CAMS)
    _check(result, CAMS, image.shape[:2])


_DYNAMIC = dynamic_size_model()


def test_threads_sharing_one_model_get_the_single_caller_maps():
    jobs = []
    for index in range(12):
        region = np.zeros((SIZE, SIZE), bool)
        region[index % 8 : index % 8 + 6, (index * 3) % 10 : (index * 3) % 10 + 5] = True
        jobs.append((_image(index), region, index % 3, LAYERS[index % 3]))

    def run(job):
        image, region, class_index, layer = job
        result = explainers.explain(MODEL, image, region, class_index, layer, methods=CAMS)
        return {name: e.heatmap for name, e in result.items()}

    alone = [run(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(run, jobs * 3))
    for index, maps in enumerate(together):
        for name, heatmap in maps.items():
            np.testing.assert_array_equal(heatmap, alone[index % len(jobs)][name])


def test_concurrent_xrai_matches_a_single_caller():
    image = _image(7)
    regions = [np.zeros((SIZE, SIZE), bool) for _ in range(3)]
    for index, region in enumerate(regions):
        region[index * 4 : index * 4 + 6, 2:10] = True

    def run(region):
        return explainers.explain(MODEL, image, region, 1, None, methods=("xrai",), options={"xrai": {"steps": 8}})["xrai"].heatmap

    alone = [run(region) for region in regions]
    with ThreadPoolExecutor(max_workers=3) as pool:
        together = list(pool.map(run, regions))
    for single, concurrent in zip(alone, together, strict=True):
        np.testing.assert_allclose(concurrent, single, atol=1e-5)
