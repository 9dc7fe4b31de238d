"""Atomic file writes: a crash leaves the old file or the new one, never half of one.

Every report, checkpoint, IR and generated file in flipflow is written through here.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from flipflow.errors import OutputPathError


def make_dir(path: str | os.PathLike) -> Path:
    """Create folder ``path`` (and its parents) or raise OutputPathError naming it."""
    path = Path(path)
    fix = "choose a writable output location"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputPathError(f"cannot create folder {path} ({e.strerror or e})", fix) from e
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write to folder {path} (permission denied)", fix)
    return path


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it replaces
    ``path`` (made world-readable: mkstemp creates 0600), else it is removed.
    The temporary name keeps the suffix, so writers that infer the format from it work."""
    path = Path(path)
    make_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp" + path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with replacing(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode())


def copy_file(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy ``src`` to ``dst`` atomically (a generated project's static files, zoo exports)."""
    return write_bytes(dst, Path(src).read_bytes())


def write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    return write_text(path, json.dumps(obj, indent=indent) + "\n")


def save_figure(fig: Any, path: str | os.PathLike, **savefig_kw: Any) -> Path:
    """Write a matplotlib figure atomically (dpi 110 unless given) and close it."""
    import matplotlib.pyplot as plt

    with replacing(path) as tmp:
        fig.savefig(tmp, **{"dpi": 110, **savefig_kw})
    plt.close(fig)
    return Path(path)
