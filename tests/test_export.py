"""The exported default model is a valid user upload and predicts exactly like the shipped one."""

from __future__ import annotations

import numpy as np

from models.export import export
from models.loader import load_default, load_user_model
from models.scenes import load_sample, sample_names


def test_exported_default_model_loads_safely_and_predicts_the_same(tmp_path) -> None:
    path = export(tmp_path / "default.keras")
    reloaded = load_user_model(path)
    image, _ = load_sample(sample_names()[0])
    batch = image[None].astype("float32")
    np.testing.assert_allclose(
        reloaded(batch, training=False).numpy(), load_default()(batch, training=False).numpy(), atol=1e-5
    )
