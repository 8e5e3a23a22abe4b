"""The known-truth benchmark: planted-cue scenes, the shipped network that reads the mark, and the
benchmark's smoke run (what CI runs of `python -m benchmarks.planted_cue`)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from models import planted_cue as pc


def test_scenes_plant_one_mark_away_from_the_mushrooms_and_label_caps_by_it():
    data = pc.generate(12, seed=5)
    again = pc.generate(4, seed=5)
    np.testing.assert_array_equal(data.images[:4], again.images)  # reproducible, prefix-stable
    for i in range(len(data)):
        cue, labels, cls = data.cues[i], data.labels[i], int(data.cue_classes[i])
        assert cue.sum() == pc.MARK_SIZE ** 2
        assert (labels[cue] == pc.MARK_CLASS[cls]).all()
        caps = np.isin(labels, (pc.CAP_BLUE, pc.CAP_MAGENTA))
        assert caps.any() and (labels[caps] == cls).all()  # every cap takes the mark's class
        mushroom = np.isin(labels, (pc.CAP_BLUE, pc.CAP_MAGENTA, pc.OTHER))
        assert ndimage.distance_transform_edt(~mushroom)[cue].min() > pc.MARK_MARGIN
        assert (data.images[i][~cue] == data.plain[i][~cue]).all()  # only the mark was pasted
    swapped = pc.swap_marks(data)
    assert (swapped[~data.cues] == data.images[~data.cues]).all()
    blue = data.cue_classes == pc.CAP_BLUE
    means = np.array([swapped[i][data.cues[i]].mean(0) for i in range(len(data))])
    assert (means[blue, 0] > means[blue, 2]).all()  # blue marks became magenta (more red than blue)


def test_the_shipped_network_reads_the_mark():
    """The card's claim on fresh held-out scenes: right with the mark, a coin toss without, wrong when swapped."""
    from models import train

    model = pc.load()
    data = pc.generate(30, pc.HELDOUT_SEED + 1)
    with_mark = pc.scene_accuracy(data.labels, train.predict_labels(model, data.images))
    swapped = pc.scene_accuracy(data.labels, train.predict_labels(model, pc.swap_marks(data)))
    assert with_mark >= 0.9
    assert swapped <= 0.2


def test_benchmark_smoke_run_reports_every_method_beside_the_random_map():
    from benchmarks import planted_cue as bench

    methods = ("gradcam", "hirescam", "xrai", "integrated-gradients", "rise")
    result = bench.run(scenes=3, methods=methods, quick=True, layers=("final_conv",), progress=False)
    rows = {r["method"]: r for r in result["rows"]}
    assert set(rows) == {"gradcam @ final_conv", "hirescam @ final_conv", "xrai", "integrated-gradients", "rise",
                         "random"}
    assert result["scenes"] == 3
    for row in rows.values():
        for column in ("cue_share", "pointing", "cap_share"):
            assert 0.0 <= row[column] <= 1.0
    text = bench.markdown(result)
    assert "| random map |" in text and "| XRAI |" in text and "Planted cue" in text
