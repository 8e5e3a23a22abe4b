"""Issue 29 (7) and Ray at scale: a killed Ray worker is restarted and its images retried; a lost cluster
gets one sentence; `--address` runs against a real two-node Ray cluster started on this machine.

The cluster is two `ray start --block` processes (a head and a node joined to it, one CPU each, their
own temp folders and ports), each in a session of its own; the fixture ends both process groups (the
processes this test started, by their ids) whatever happens."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from helpers_batch import cli_args, model_and_images, summary_rows

from explainers import batch

ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
OPTIONS = ["--method", "gradcam", "--method", "integrated-gradients", "--layer", "conv2",
           "--class-names", "background,cap,gills"]
pytestmark = pytest.mark.slow


def _rows(out: Path) -> list[dict]:
    return summary_rows(out, drop=("seconds",))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("raysurvive")
    model_path, images = model_and_images(root, [32] * 12, seed=400, pattern="q{:02d}.png", model_size=32)
    local = root / "local"
    assert batch.main(["--model", str(model_path), "--images", str(images), "--out", str(local), *OPTIONS]) == 0
    return root, model_path, images, local


@pytest.fixture
def ray_tmp(monkeypatch):
    folder = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    monkeypatch.setenv("SEGEXPLAIN_RAY_TMP", folder)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _args(model_path, images, out, *extra) -> list[str]:
    return cli_args(model_path, images, out, *OPTIONS, *extra)


def _processes() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, command line) of every process, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            table[int(entry.name)] = (parent, command)
    return table


def _actor_processes(root: int | None = None) -> list[int]:
    """Ray actor processes (`ray::RayWorker`) started below `root` (default: this test process)."""
    table = _processes()
    ours, grew = {os.getpid() if root is None else root}, True
    while grew:
        more = {pid for pid, (parent, _) in table.items() if parent in ours} - ours
        ours |= more
        grew = bool(more)
    return [pid for pid in ours if table.get(pid, (0, ""))[1].startswith("ray::RayWorker")]


def test_a_killed_worker_is_restarted_and_its_images_retried(data, ray_tmp) -> None:
    root, model_path, images, local = data
    out = root / "killed_worker"
    killed: list[int] = []

    def kill_one_worker() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not list(out.glob("q*.json")):
            time.sleep(0.02)
        workers = _actor_processes()
        if workers:
            os.kill(workers[0], signal.SIGKILL)  # a worker process this test's Ray started
            killed.append(workers[0])

    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    code = batch.main(_args(model_path, images, out, "--engine", "ray", "--workers", "2", "--batch-size", "1"))
    killer.join(timeout=5)
    assert killed, "a worker must have been killed mid-run"
    done_after_kill = len(list(out.glob("q*.json")))
    assert code == 0
    assert done_after_kill == 12 and _rows(out) == _rows(local)


def test_a_cluster_that_cannot_be_reached_is_one_sentence(data, capsys) -> None:
    root, model_path, images, _ = data
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there
    code = batch.main(_args(model_path, images, root / "nowhere", "--engine", "ray",
                            "--address", f"127.0.0.1:{port}"))
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code in (2, batch.EXIT_STOPPED) and "Traceback" not in err
    assert f"127.0.0.1:{port}" in err and err.count(". ") == 0


def test_a_cluster_lost_mid_run_is_one_sentence_and_the_rerun_resumes(data, monkeypatch, capsys, ray_tmp) -> None:
    import ray

    root, model_path, images, local = data
    out = root / "lost"
    real_wait = ray.wait
    calls = []

    def cluster_goes_away(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise ray.exceptions.RaySystemError("connection to the GCS lost")
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(ray, "wait", cluster_goes_away)
    code = batch.main(_args(model_path, images, out, "--engine", "ray", "--workers", "2", "--batch-size", "1"))
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == batch.EXIT_STOPPED
    assert err.startswith("The run stopped because the local Ray was lost (RaySystemError): the 3 images")
    assert "Traceback" not in err and err.count(". ") == 0
    monkeypatch.setattr(ray, "wait", real_wait)
    assert batch.main(_args(model_path, images, out, "--engine", "ray", "--workers", "2")) == 0
    assert _rows(out) == _rows(local)


def _free_ports(count: int) -> list[int]:
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def _start(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([RAY, "start", "--block", "--disable-usage-stats", *args], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _stop(proc: subprocess.Popen, temp: str) -> None:
    """End the process group this test started, then any process still using its temp folder."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)
        if proc.poll() is not None:
            break
    for pid, (_, command) in _processes().items():
        if temp in command:  # a process of this test's cluster that left the group
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def cluster():
    """A head (1 CPU) and a second node (1 CPU) joined to it, on this machine; stopped always."""
    head_tmp = tempfile.mkdtemp(prefix="rh", dir="/tmp")
    node_tmp = tempfile.mkdtemp(prefix="rn", dir="/tmp")
    port, client, agent_h, agent_n, metrics_h, metrics_n = _free_ports(6)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "disabled"}  # a private test cluster: no token (a token file in ~/.ray would turn it on)
    procs = []
    try:
        procs.append((_start(["--head", "--num-cpus", "1", "--port", str(port),
                              "--ray-client-server-port", str(client), "--include-dashboard", "false",
                              "--dashboard-agent-listen-port", str(agent_h), "--metrics-export-port", str(metrics_h),
                              "--temp-dir", head_tmp], env), head_tmp))
        import ray

        address = f"{ray.util.get_node_ip_address()}:{port}"  # Ray binds to the node's address, not loopback
        _wait_for_cpus(address, 1, env)
        procs.append((_start(["--address", address, "--num-cpus", "1",
                              "--dashboard-agent-listen-port", str(agent_n), "--metrics-export-port", str(metrics_n),
                              "--temp-dir", node_tmp], env), node_tmp))
        _wait_for_cpus(address, 2, env)
        yield address, [proc.pid for proc, _ in procs]
    finally:
        for proc, temp in reversed(procs):
            _stop(proc, temp)
        shutil.rmtree(head_tmp, ignore_errors=True)
        shutil.rmtree(node_tmp, ignore_errors=True)


def _wait_for_cpus(address: str, cpus: int, env: dict, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = subprocess.run([RAY, "status", "--address", address], env=env, capture_output=True, text=True)
        if f"/{cpus}.0 CPU" in status.stdout:
            return
        time.sleep(1)
    raise AssertionError(f"the Ray cluster at {address} did not reach {cpus} CPUs: {status.stdout} {status.stderr}")


def test_address_runs_on_a_two_node_cluster(data, cluster) -> None:
    """The batch CLI, as a user runs it (its own process), joins a head and a second node; each node runs an actor.

    A process of its own, as the CLI is used: in one Python process that ran a local Ray before, Ray 2.x
    cancels actors created after joining another cluster ("the actor never ran"), which is Ray's state, not ours.
    """
    root, model_path, images, local = data
    out = root / "cluster"
    address, node_pids = cluster
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "RAY_AUTH_MODE": "disabled"}
    log = root / "cluster.log"
    with log.open("w") as handle:
        run = subprocess.Popen([sys.executable, "-m", "explainers.batch",
                                *_args(model_path, images, out, "--engine", "ray", "--address", address,
                                       "--workers", "2", "--batch-size", "1")],
                               env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=handle)
        nodes_with_actors: set[int] = set()
        while run.poll() is None:  # which node's process tree holds a RayWorker while the run goes on
            nodes_with_actors |= {pid for pid in node_pids if _actor_processes(pid)}
            time.sleep(0.2)
    err = log.read_text()
    assert run.returncode == 0, err[-2000:]
    assert nodes_with_actors == set(node_pids), "an actor on the head and one on the joined node"
    assert _rows(out) == _rows(local)
