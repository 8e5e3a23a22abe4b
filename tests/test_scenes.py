"""The scene generator: reproducible, well-formed, varied, and a gallery whose samples are what they say."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from models import CLASS_COLORS, CLASS_NAMES, scenes
from models.scenes import generate, load_sample, sample_description, sample_names


def test_same_seed_same_scenes_and_prefix_stable() -> None:
    a_img, a_mask = generate(5, seed=3)
    b_img, b_mask = generate(5, seed=3)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_mask, b_mask)
    # scene i depends only on (seed, i): asking for fewer scenes gives the same first ones
    c_img, c_mask = generate(2, seed=3)
    np.testing.assert_array_equal(c_img, a_img[:2])
    np.testing.assert_array_equal(c_mask, a_mask[:2])


def test_different_seeds_differ() -> None:
    a, _ = generate(2, seed=1)
    b, _ = generate(2, seed=2)
    assert not np.array_equal(a, b)


def test_pinned_checksum_guards_cross_machine_determinism() -> None:
    # Only exact arithmetic is used on pixels; if this fails on another machine or after an edit of
    # the generator, the shipped weights were trained on different data than this code now draws.
    images, masks = generate(2, seed=0)
    digest = hashlib.sha256(images.tobytes() + masks.tobytes()).hexdigest()
    assert digest == PINNED_DIGEST


PINNED_DIGEST = "5d10fdd71463713d88c812843e642bf1dcdec9c2e0342f184405e53d0003e7db"


@pytest.mark.parametrize("size", [144, 96])
def test_shapes_and_dtypes(size: int) -> None:
    images, masks = generate(3, seed=11, size=size)
    assert images.shape == (3, size, size, 3) and images.dtype == np.uint8
    assert masks.shape == (3, size, size) and masks.dtype == np.uint8


def test_labels_valid_and_every_class_appears_over_a_batch() -> None:
    images, masks = generate(40, seed=5)
    assert masks.max() < len(CLASS_NAMES)
    assert set(np.unique(masks)) == set(range(len(CLASS_NAMES)))
    assert images.std() > 20  # textured, not flat colour
    # variety: the number of mushroom-like pixels differs a lot between scenes
    fg = (masks > 0).mean(axis=(1, 2))
    assert fg.min() < 0.05 < 0.15 < fg.max()


def test_class_colours_are_distinct_rgb_triples() -> None:
    assert len(CLASS_COLORS) == len(CLASS_NAMES)
    assert len(set(CLASS_COLORS)) == len(CLASS_COLORS)
    for colour in CLASS_COLORS:
        assert len(colour) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in colour)


def test_samples_load_with_descriptions() -> None:
    names = sample_names()
    assert len(names) >= 8 and names == list(scenes.SAMPLES)
    for name in names:
        image, mask = load_sample(name)
        assert image.shape == (144, 144, 3) and image.dtype == np.uint8
        assert mask.shape == (144, 144) and mask.dtype == np.uint8
        assert len(sample_description(name)) > 20
    image, mask = load_sample(names[0], size=96)
    assert image.shape == (96, 96, 3) and mask.shape == (96, 96)


def test_samples_are_reproducible() -> None:
    a = load_sample("group in grass")
    b = load_sample("group in grass")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_default_sample_shows_every_part_clearly() -> None:
    _, mask = load_sample(sample_names()[0])
    counts = np.bincount(mask.ravel(), minlength=len(CLASS_NAMES))
    assert (counts[1:] >= 40).all(), dict(zip(CLASS_NAMES, counts.tolist(), strict=True))


def test_failure_samples_are_what_they_say() -> None:
    for name in ("no mushroom", "distractors only"):
        image, mask = load_sample(name)
        assert not mask.any(), name
    # the distractors are visibly there: strongly red or pale pixels the bare scene does not have
    busy, _ = load_sample("distractors only")
    red = (busy[..., 0].astype(int) - busy[..., 1] > 80).sum()
    assert red > 30

    _, tiny = load_sample("tiny mushroom")
    assert 0 < (tiny > 0).sum() < 0.01 * tiny.size

    spec = scenes.SAMPLES["heavy occlusion"]
    rng = np.random.default_rng([spec.seed, 0])
    _, occluded = load_sample("heavy occlusion")
    _, clear = scenes._scene(rng, 144, {**spec.scene, "occluders": 0, "cover": 0})
    assert 0 < (occluded > 0).sum() < 0.6 * (clear > 0).sum()


def test_unknown_sample_name_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="fly agaric"):
        load_sample("no such scene")

