"""What may be read and where may be written.

Inputs are regular files: a FIFO would block a reader forever, a device
(``/dev/zero``) would feed it without end, so both are refused before they are
opened for reading.  Outputs are written whole or not at all, never over an
input, a device or a directory; a symbolic link's target is written and the
link kept; a new file gets the permissions a plain copy would (``0666`` less the
umask) and a replaced one keeps its own.  Work that would need more memory than
the machine has is refused before it starts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterable

from .errors import EncapsulatedSTLError, OutputError

#: What a special file is called in messages, by its ``stat`` type test.
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str | None:
    """``None`` for a regular file, else what the file is, for a message."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def open_input(path: str | os.PathLike, error: type[EncapsulatedSTLError] = EncapsulatedSTLError) -> BinaryIO:
    """``path`` opened for binary reading, if it is a regular file; else ``error``.

    The file is opened without blocking (a FIFO with no writer would otherwise
    hang here) and its type is checked on the open descriptor, so nothing can be
    swapped in between the check and the read.
    """
    if not os.fspath(path):
        raise error("the file name is empty")
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise error("no such file", path) from None
    except IsADirectoryError:
        raise error("is a directory, not a file", path) from None
    except ValueError:  # os.open refuses a name with a NUL byte
        raise error("cannot read: the file name holds a NUL byte", path) from None
    except OSError as failure:
        if failure.errno == errno.ENXIO:  # a socket (or a FIFO's missing device): say what it is
            try:
                kind = file_kind(os.stat(path).st_mode)
            except OSError:
                kind = None
            if kind is not None:
                raise error(f"is {kind}, not a file", path) from None
        raise error(f"cannot read: {_reason(failure)}", path) from None
    try:
        kind = file_kind(os.fstat(descriptor).st_mode)
        if kind is not None:
            raise error(f"is {kind}, not a file", path)
        if hasattr(os, "set_blocking"):
            os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def check_input(path: str | os.PathLike, error: type[EncapsulatedSTLError] = EncapsulatedSTLError) -> int:
    """The size in bytes of ``path`` if it is a regular file that can be read; else ``error``.

    For readers that take a file name (pydicom, nibabel, pynrrd) and would block
    on a FIFO or read a device without end.
    """
    with open_input(path, error) as stream:
        return os.fstat(stream.fileno()).st_size


def read_input(path: str | os.PathLike, error: type[EncapsulatedSTLError] = EncapsulatedSTLError) -> bytes:
    """All bytes of a regular file (see :func:`open_input`)."""
    with open_input(path, error) as stream:
        try:
            return stream.read()
        except OSError as failure:
            raise error(f"cannot read: {_reason(failure)}", path) from None


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation without swapping, if known."""
    try:
        with open("/proc/meminfo", "rb") as meminfo:
            for line in meminfo:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the system, where the C library can (glibc).

    Arrays under glibc's mmap threshold (which larger arrays raise) come from the heap;
    freed, they stay in the process, and what is allocated next comes on top of them.
    from-ct calls this after its crossing search (70 MiB less peak memory on the skull of
    the benchmark), and a picture is drawn after it (OpenGL's buffers on a trimmed heap).
    """
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError, TypeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None


def check_memory(
    needed: int, what: str, path: str | os.PathLike | None = None,
    error: type[EncapsulatedSTLError] = EncapsulatedSTLError,
) -> None:
    """Refuse work that needs ``needed`` bytes for ``what`` when the machine lacks them."""
    available = available_memory()
    if available is not None and needed > available:
        raise error(
            f"{what} would need {_size(needed)} of memory, more than the "
            f"{_size(available)} available",
            path,
        )


def _size(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def current_umask() -> int:
    """The process umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no other way to read it; put it straight back
    os.umask(mask)
    return mask


def _identity(status: os.stat_result) -> tuple[int, int]:
    return status.st_dev, status.st_ino


def check_output_path(
    path: str | os.PathLike, force: bool = False, inputs: Iterable[str | os.PathLike] = ()
) -> Path:
    """Where the file ``path`` names will be written, if it may be; else :class:`OutputError`.

    A symbolic link stands for its target, which is what gets written.  An
    existing regular file is replaced only with ``force``, and never when it is
    one of ``inputs``; anything else that exists (a directory, a device, a
    FIFO) is refused.  Called before any expensive work so that a doomed run
    fails at once; call :func:`check_not_input` again once more inputs are known.
    """
    given = Path(path)
    if not str(path):
        raise OutputError("the output file name is empty")
    target = Path(os.path.realpath(given))
    try:
        status = os.stat(target)
    except FileNotFoundError:
        status = None
    except OSError as failure:
        raise OutputError(f"cannot write: {_reason(failure)}", given) from None
    if status is not None:
        kind = file_kind(status.st_mode)
        if stat.S_ISDIR(status.st_mode):
            raise OutputError("is a directory; give a file name", given)
        if kind is not None:
            raise OutputError(f"is {kind}; only a regular file can be written", given)
        check_not_input(target, inputs, given)
        if not force:
            raise OutputError("already exists; use --force to overwrite it", given)
    _check_writable(target.parent, given, f"directory {target.parent} does not exist")
    return target


def _check_writable(directory: Path, given, missing: str) -> None:
    """Refuse ``given`` unless ``directory`` is a directory we may create files in."""
    if not directory.is_dir():
        raise OutputError(missing, given)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write: directory {directory} is not writable", given)


def check_not_input(target: str | os.PathLike, inputs: Iterable[str | os.PathLike], given=None) -> None:
    """Refuse to write ``target`` when it is the same file as one of ``inputs``."""
    try:
        written = _identity(os.stat(target))
    except OSError:
        return  # nothing there yet: it cannot be an input
    for source in inputs:
        try:
            if _identity(os.stat(source)) == written:
                raise OutputError(
                    f"is an input ({source}); write the output to another file", given or target
                )
        except OSError:
            continue


def check_output_directory(path: str | os.PathLike, create: bool = True) -> Path:
    """A directory to write files into, created if missing (with ``create``); else :class:`OutputError`.

    ``create=False`` only checks that it could be: it is a directory, or the
    nearest folder above it that exists is one that can be written.
    """
    directory = Path(path)
    if not str(path):
        raise OutputError("the output directory name is empty")
    if directory.exists() and not directory.is_dir():
        raise OutputError("exists and is not a directory", directory)
    if create:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as failure:
            raise OutputError(f"cannot create the directory: {_reason(failure)}", directory) from None
    existing = Path(os.path.realpath(directory))
    while not existing.exists():
        existing = existing.parent
    _check_writable(existing, directory, f"cannot create the directory: {existing} is not a directory")
    return directory


def write_atomically(
    path: str | os.PathLike, write, force: bool = False, verify=None,
    inputs: Iterable[str | os.PathLike] = (),
) -> Path:
    """Create ``path`` through ``write(file_object)`` with no partial file left behind.

    The content goes to a temporary file beside the target, which is renamed
    over it only when complete.  ``verify()``, when given, is called after
    writing and before the rename: if it raises (a validation still running on
    another thread found a fault), the temporary file is removed and the target
    never appears.  The file gets the permissions (and, where allowed, the
    owner) of the file it replaces, or ``0666`` less the umask when new.

    Returns the path written: the target of ``path`` when it is a symbolic link.

    Raises
    ------
    OutputError
        If the target may not be written (see :func:`check_output_path`) or
        writing fails.
    """
    target = check_output_path(path, force, inputs)
    try:
        replaced = os.stat(target)
    except OSError:
        replaced = None
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as failure:
        raise OutputError(f"cannot write here: {_reason(failure)}", path) from None
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            if replaced is None:
                os.fchmod(stream.fileno(), 0o666 & ~current_umask())
            else:
                _keep_owner(stream.fileno(), replaced)
                os.fchmod(stream.fileno(), stat.S_IMODE(replaced.st_mode))
        if verify is not None:
            verify()
        os.replace(temporary, target)
    except OSError as failure:
        Path(temporary).unlink(missing_ok=True)
        raise OutputError(f"cannot write: {_reason(failure)}", path) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def write_all_atomically(
    writes: Iterable[tuple[str | os.PathLike, object]], force: bool = False, inputs: Iterable[str | os.PathLike] = (),
    write=None,
) -> list[Path]:
    """Write each ``(path, content)`` (:func:`write_atomically`, ``write(stream, content)``,
    by default ``stream.write(content)``), all or none.

    When one cannot be written, the files this call created are removed again before
    the error is raised, so a run never leaves part of its output behind.  (A file that
    ``force`` replaced cannot be given back; it keeps the new content.)

    Returns the paths written, in order.
    """
    inputs = list(inputs)
    write = write or (lambda stream, content: stream.write(content))
    written, created = [], []
    try:
        for path, content in writes:
            new = not os.path.exists(path)  # through a symlink: its target
            written.append(write_atomically(path, lambda stream: write(stream, content), force, inputs=inputs))
            if new:
                created.append(written[-1])
    except BaseException:
        for path in created:
            Path(path).unlink(missing_ok=True)
        raise
    return written


def safe_file_stem(text: str, limit: int = 64) -> str:
    """``text`` reduced to characters safe in a file name on every system (letters,
    digits, ``.``, ``_``, ``-``), at most ``limit`` of them; ``""`` when none is left."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:limit]


def _keep_owner(descriptor: int, replaced: os.stat_result) -> None:
    if not hasattr(os, "fchown"):
        return
    try:
        os.fchown(descriptor, replaced.st_uid, replaced.st_gid)
    except OSError as failure:
        if failure.errno not in (errno.EPERM, errno.EINVAL):
            raise
