"""The CAM pass traced before the first stroke (`dashboard.warmup`): the page's own call then finds it
traced and does not trace again; each combination is warmed once; a failure stays in the thread."""

from __future__ import annotations

import numpy as np
from helpers_models import random_image, tiny_seg_model

import explainers
from dashboard import warmup
from explainers.methods import cams

CAMS = ("gradcam", "gradcam++", "vinogradova")


def _traced(model) -> list:
    return list(cams._FUNCTIONS._store.get(model, {}).values())


def test_the_pages_first_call_finds_the_pass_traced() -> None:
    model = tiny_seg_model(size=16, seed=3)
    image = random_image(16, seed=5)
    assert _traced(model) == []
    thread = warmup.start("tiny-3", model, image, "conv2", CAMS, "logits", {})
    assert thread is not None
    thread.join(timeout=120)
    functions = _traced(model)
    assert len(functions) == 1 and functions[0].experimental_get_tracing_count() == 1
    region = np.zeros((16, 16), bool)
    region[2:6, 3:9] = True  # the user's stroke, another region and class than the warm-up's
    explainers.explain(model, image, region, 2, "conv2", methods=CAMS, target="logits")
    assert _traced(model) == functions and functions[0].experimental_get_tracing_count() == 1
    assert warmup.start("tiny-3", model, image, "conv2", CAMS, "logits", {}) is None  # once per combination


def test_a_failing_warm_up_stays_in_its_thread() -> None:
    model = tiny_seg_model(size=16, seed=4)
    thread = warmup.start("tiny-4", model, random_image(16, seed=1), "no_such_layer", CAMS, "logits", {})
    thread.join(timeout=60)
    assert not thread.is_alive() and _traced(model) == []


def test_the_centre_box_is_never_empty() -> None:
    for shape in ((1, 1), (2, 5), (224, 224), (300, 451)):
        box = warmup.centre_box(shape)
        assert box.shape == shape and box.any()


def test_a_model_is_warmed_at_its_default_layer_as_soon_as_it_loads() -> None:
    model = tiny_seg_model(size=16, seed=6)
    thread = warmup.start_on_load("tiny-6", model, ["gradcam", "xrai", "vinogradova"], "logits")
    thread.join(timeout=120)
    functions = _traced(model)
    assert len(functions) == 1
    region = np.zeros((16, 16), bool)
    region[8:, 8:] = True
    explainers.explain(model, random_image(16, seed=2), region, 1, explainers.default_layer(model),
                       methods=("gradcam", "vinogradova"), target="logits")
    assert _traced(model) == functions and functions[0].experimental_get_tracing_count() == 1


def test_a_free_size_model_waits_for_the_pages_image() -> None:
    import keras

    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1, activation="softmax", name="head")(x))
    assert warmup.start_on_load("free", model, ["gradcam"], "logits") is None


def test_an_upload_before_the_method_picker_was_drawn_warms_the_default_methods() -> None:
    """In a loaded browser the upload's run can come before the session's first run drew the method picker
    (no methods in the session yet): the load went on to a TypeError on the page, and the sidebar stopped."""
    model = tiny_seg_model(size=16, seed=7)
    thread = warmup.start_on_load("tiny-7", model, None, "logits")
    assert thread is not None
    thread.join(timeout=120)
    assert len(_traced(model)) == 1
