"""Where a session's uploaded model lives: private to the session, on disk and in memory.

Why: a server-wide upload folder and a shared model cache let other sessions' uploads evict or
prune a session's model behind its back, and expose files to every user of the machine. Here:

- bytes go to `<base>/segexplain-uploads-<random>/<session id>/<digest>/model<suffix>`; the process
  folder is made by `tempfile.mkdtemp` (mode 0700), session folders are 0700, files 0600; the file is
  stored under a lower-case suffix whatever the user called it (Keras reads the suffix);
- loaded models are held per (session, digest), at most `MAX_LOADED` server-wide; one evicted by
  other sessions' uploads is reloaded from the session's own bytes on its next run, so no session's
  model is ever replaced or dropped behind its back;
- folders of sessions that have ended are deleted whenever a session stores an upload, and the
  whole process folder at exit.

Messages never show these paths: the user's file name is the only name shown.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

import streamlit as st

MAX_LOADED = 4  # uploaded models held in memory by the whole server (see `keep_model`)
MAX_LOADED_ENV = "SEGEXPLAIN_MAX_LOADED_MODELS"
PENDING_MODEL = "pending_model_upload"  # session state: {"file", "name"} of an upload whose load started
DONE_MODEL = "done_model_upload"  # session state: id of the last model upload handled to the end
DONE_IMAGE = "done_image_upload"  # session state: id of the last image upload handled
SESSION_KEY = "upload_session_token"  # session state: random part of the session's identity
STALE_SECONDS = 24 * 3600  # folders of unknown sessions older than this are deleted (no runtime to ask)

_lock = threading.RLock()
_roots: dict[Path, Path] = {}
_loaded: OrderedDict[tuple[str, str], Any] = OrderedDict()  # (session id, digest) → keras.Model


def session_id() -> str:
    """This session's identity: Streamlit's session id (asked of the runtime when purging) joined
    with a random token kept in the session's state (unique even where ids repeat, as in AppTest)."""
    if SESSION_KEY not in st.session_state:
        st.session_state[SESSION_KEY] = uuid.uuid4().hex
    token = st.session_state[SESSION_KEY]
    runtime_id = "local"
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        if ctx is not None and ctx.session_id:
            runtime_id = _safe(str(ctx.session_id))
    except ImportError:
        pass
    return f"{runtime_id}__{token}"


def process_root(base: Path) -> Path:
    """This process's private upload folder under `base` (created once, mode 0700, removed at exit)."""
    base = Path(base)
    with _lock:
        root = _roots.get(base)
        if root is None or not root.is_dir():
            base.mkdir(parents=True, exist_ok=True)
            root = Path(tempfile.mkdtemp(prefix="segexplain-uploads-", dir=base))
            _roots[base] = root
            atexit.register(shutil.rmtree, root, True)
        return root


def upload_id(uploaded: Any) -> str:
    """Identifies one upload action: Streamlit's file id (a new one per upload), else name and size."""
    file_id = getattr(uploaded, "file_id", None)
    return str(file_id) if file_id else f"{uploaded.name}:{uploaded.size}"


def store(base: Path, digest: str, suffix: str, data: bytes) -> Path:
    """Write `data` into the session's private folder (atomically); on failure nothing stays behind."""
    folder = process_root(base) / _safe(session_id())
    target = folder / digest
    path = target / f"model{suffix}"
    partial = target / f".partial{suffix}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
        target.mkdir(mode=0o700, exist_ok=True)
        if not path.is_file():
            partial.write_bytes(data)
            os.chmod(partial, 0o600)
            partial.replace(path)
    except OSError:
        forget(partial, base)
        raise
    purge_ended_sessions(base)
    return path


def keep_only(base: Path, digest: str) -> None:
    """After an upload is accepted: delete the session's other stored uploads."""
    root = _roots.get(Path(base))
    folder = root / _safe(session_id()) if root else None
    if folder is None or not folder.is_dir():
        return
    for old in folder.iterdir():
        if old.name != digest:
            shutil.rmtree(old, ignore_errors=True)


def forget(path: Path, base: Path) -> None:
    """Delete a refused upload and every folder it leaves empty, up to (not including) the process's folder
    (or `base` for a path outside it): another session may be storing into the process's folder at that
    moment, and its next `mkdir` would find no parent ("No such file or directory")."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
    root = _roots.get(Path(base))  # keyed by the base as `store` was given it
    base = Path(base).resolve()
    stop = {base} if root is None else {base, root.resolve()}
    folder = path.parent
    while folder.resolve() not in stop and base in folder.resolve().parents:
        try:
            folder.rmdir()
        except OSError:
            break
        folder = folder.parent


def session_file(base: Path, digest: str) -> Path | None:
    """The session's own stored bytes of upload `digest`, if they are still there."""
    root = _roots.get(Path(base))
    if root is None:
        return None
    folder = root / _safe(session_id()) / digest
    files = sorted(folder.glob("model*")) if folder.is_dir() else []
    return files[0] if files else None


def purge_ended_sessions(base: Path) -> None:
    """Delete the folders of sessions that have ended (asking the Streamlit runtime when there is one)."""
    root = _roots.get(Path(base))
    if root is None:
        return
    mine = _safe(session_id())
    active = _active_checker()
    try:
        folders = [f for f in root.iterdir() if f.is_dir() and f.name != mine]
    except OSError:
        return
    for folder in folders:
        try:
            runtime_id = folder.name.split("__", 1)[0]
            ended = not active(runtime_id) if active else time.time() - folder.stat().st_mtime > STALE_SECONDS
        except OSError:
            continue
        if ended:
            shutil.rmtree(folder, ignore_errors=True)
            with _lock:
                for key in [k for k in _loaded if _safe(k[0]) == folder.name]:
                    del _loaded[key]


def _active_checker():
    try:
        from streamlit.runtime import Runtime

        if Runtime.exists():
            runtime = Runtime.instance()
            return runtime.is_active_session
    except (ImportError, RuntimeError):
        pass
    return None


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text) or "session"


def _max_loaded() -> int:
    try:
        return max(1, int(os.environ.get(MAX_LOADED_ENV, "") or MAX_LOADED))
    except ValueError:
        return MAX_LOADED


def keep_model(digest: str, model: Any) -> None:
    """Hold the session's loaded model (replacing the session's previous upload). At most
    `MAX_LOADED` uploaded models stay in memory server-wide, least recently used evicted first;
    an evicted session reloads its model from its own bytes (`session_file`) on its next run."""
    sid = session_id()
    with _lock:
        for key in [k for k in _loaded if k[0] == sid and k[1] != digest]:
            del _loaded[key]
        _loaded[(sid, digest)] = model
        _loaded.move_to_end((sid, digest))
        while len(_loaded) > _max_loaded():
            _loaded.popitem(last=False)


def kept_model(digest: str) -> Any | None:
    """The session's model if it is still in memory (None after an eviction: reload it)."""
    key = (session_id(), digest)
    with _lock:
        model = _loaded.get(key)
        if model is not None:
            _loaded.move_to_end(key)
        return model


def drop_model() -> None:
    """Forget the session's loaded model (e.g. when it switches back to the shipped one)."""
    sid = session_id()
    with _lock:
        for key in [k for k in _loaded if k[0] == sid]:
            del _loaded[key]


def loaded_sessions() -> list[str]:
    """Sessions whose uploaded model is in memory now (for tests and diagnostics)."""
    with _lock:
        return [key[0] for key in _loaded]
