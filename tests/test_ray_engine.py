"""The Ray engine: a local Ray with 2 CPUs gives the local engine's files and maps; a killed Ray run resumes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from helpers_batch import cli_args, model_and_images, summary_rows

from explainers import batch

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = ["--method", "gradcam", "--method", "gradcam++", "--method", "integrated-gradients",
           "--metrics", "--metric-steps", "4", "--class-names", "background,cap,gills"]


_rows = summary_rows


def _comparable(out: Path) -> list[dict]:
    """Summary rows without the timings (the only column allowed to differ between runs)."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in _rows(out)]


@pytest.fixture(scope="module")
def ray_tmp():
    folder = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    old = os.environ.get("SEGEXPLAIN_RAY_TMP")
    os.environ["SEGEXPLAIN_RAY_TMP"] = folder
    yield folder
    if old is None:
        os.environ.pop("SEGEXPLAIN_RAY_TMP", None)
    else:
        os.environ["SEGEXPLAIN_RAY_TMP"] = old
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("raydata")
    model_path, images = model_and_images(root, [16] * 20, seed=200, pattern="p{:02d}.png")
    local = root / "local"
    assert batch.main(["--model", str(model_path), "--images", str(images), "--out", str(local), *OPTIONS]) == 0
    return root, model_path, images, local


def _args(model_path, images, out, *extra):
    return cli_args(model_path, images, out, *OPTIONS, *extra)


def test_ray_run_equals_the_local_run(dataset, ray_tmp, capsys) -> None:
    import ray

    root, model_path, images, local = dataset
    out = root / "ray"
    code = batch.main(_args(model_path, images, out, "--engine", "ray", "--workers", "2", "--batch-size", "3"))
    assert code == 0
    assert not ray.is_initialized(), "the engine shuts down the Ray it started"
    err = capsys.readouterr().err
    assert "20/20" in err and "img/s" in err
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in local.iterdir())
    assert _comparable(out) == _comparable(local)
    for npz in sorted(local.glob("*.npz")):
        with np.load(npz) as a, np.load(out / npz.name) as b:
            assert set(a.files) == set(b.files)
            for key in a.files:
                np.testing.assert_allclose(b[key], a[key], rtol=0, atol=1e-6, err_msg=f"{npz.name}:{key}")


def test_killed_ray_run_resumes_to_the_local_summary(dataset, ray_tmp) -> None:
    root, model_path, images, local = dataset
    out = root / "ray_killed"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "explainers.batch",
         *_args(model_path, images, out, "--engine", "ray", "--workers", "2", "--batch-size", "1")],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and len(list(out.glob("p*.json"))) < 2 and proc.poll() is None:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started
    proc.wait()
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("p*.json")}
    assert 2 <= len(before) < 20, "the run must be killed midway"
    code = batch.main(_args(model_path, images, out, "--engine", "ray", "--workers", "2", "--batch-size", "4"))
    assert code == 0
    assert {n: (out / n).stat().st_mtime_ns for n in before} == before, "finished images are not redone"
    assert _comparable(out) == _comparable(local)
    assert len(_rows(out)) == 20 * 4


def test_without_ray_the_flag_names_the_package(dataset, monkeypatch, capsys) -> None:
    root, model_path, images, _ = dataset
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    assert batch.main(_args(model_path, images, root / "noray", "--engine", "ray")) == 2
    err = capsys.readouterr().err
    assert "ray[data]" in err and "not installed" in err
    assert not (root / "noray").exists(), "nothing is written before the refusal"


def test_address_needs_the_ray_engine(dataset, capsys) -> None:
    root, model_path, images, _ = dataset
    assert batch.main(_args(model_path, images, root / "x", "--address", "auto")) == 2
    assert "--engine ray" in capsys.readouterr().err


def test_an_actor_death_is_told_by_its_cause_in_one_line() -> None:
    """Ray's pages of text about a dead actor shrink to the reason (CI once saw only "kept losing its workers")."""
    from ray.exceptions import RayActorError

    from explainers.ray_engine import death_cause

    error = RayActorError(error_msg="The actor died because of an error raised in its creation task\n"
                                    "Traceback (most recent call last):\n  File \"w.py\", line 3\n"
                                    "ModuleNotFoundError: No module named 'tensorflow'", actor_init_failed=True)
    assert death_cause(error) == "the worker could not start: ModuleNotFoundError: No module named 'tensorflow'"
    assert death_cause(RayActorError(error_msg="x" * 500)).endswith("...")
    assert len(death_cause(RayActorError(error_msg="x" * 500))) == 200
