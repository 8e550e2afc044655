"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file mdval writes goes through :func:`atomic_path` (temp file in the same folder, then
``os.replace``). The result gets the mode an ordinary ``open()`` would give it (0666 less the
umask, usually 0644): ``tempfile.mkstemp`` creates 0600 files, which a shared group could not
read once renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _current_umask() -> int:
    """The process umask, read without changing it where Linux allows (set-and-restore would race
    with files another thread creates meanwhile)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it, then put it back
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds, move it onto ``path``.

    The parent folder is created. On an exception the temporary file is removed and ``path`` is
    left as it was. ``suffix`` matters to writers that choose a format by extension (matplotlib,
    ASE): give ``.png`` or ``.extxyz`` there.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json(path, obj, indent: int | None = 1, **dump_kwargs) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (``json.dumps`` keyword arguments pass through)."""
    return write_text(path, json.dumps(obj, indent=indent, **dump_kwargs) + "\n")
