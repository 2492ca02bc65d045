"""Atomic file writes: a failed or interrupted write never leaves a partial file at the target path."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from convnext_export.errors import InvalidOptionError, OutputError

# errno values that mean "the machine cannot take this write", not a bug: reported as one line naming the file.
WRITE_FAILURES = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.EFBIG}


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only if the block succeeds.

    The temporary file lives in the target's directory so the final ``os.replace`` is a same-filesystem
    rename, which POSIX and Windows both perform atomically. It is removed on any failure, Ctrl-C included.
    A target that is a folder is a usage error; a folder that cannot be written, or a disk that fills up
    during the write, is an OutputError naming the target (exit code 4).
    """
    target = Path(target)
    if target.is_dir():
        raise InvalidOptionError(f"{target} is a directory: give a file name")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    except OSError as exc:
        raise _write_error(target, exc) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; artifacts should read like any new file
        os.replace(tmp, target)
    except OSError as exc:
        if exc.errno not in WRITE_FAILURES:
            raise
        raise _write_error(target, exc) from None
    finally:
        tmp.unlink(missing_ok=True)


def _write_error(target: Path, exc: OSError) -> OutputError | OSError:
    if exc.errno in WRITE_FAILURES or isinstance(exc, (FileExistsError, NotADirectoryError)):
        return OutputError(f"cannot write {target}: {exc.strerror or exc}")
    return exc


def refuse_overwriting_inputs(target: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None]) -> None:
    """A usage error when an output would replace one of the command's inputs (`quantize m.onnx -o m.onnx`)."""
    out = Path(target).resolve()
    for given in inputs:
        if given is not None and Path(given).exists() and Path(given).resolve() == out:
            raise InvalidOptionError(f"the output {target} is an input of this command: choose another file")


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
