# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Atomic file output: a file is either complete or absent, never partial."""

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_all"]


def atomic_write(filename, write, *, overwrite=True):
    """
    Call ``write(tmp_path)``, then move the temporary file onto ``filename``.

    The temporary file sits in the target's directory (so the final
    `os.replace` is atomic) and is removed if ``write`` fails or is
    interrupted (KeyboardInterrupt too). The result gets the permissions
    `open` would give (0o666 less the umask), or those of the file it replaces.

    Parameters
    ----------
    filename : path-like
        The target.
    write : callable
        Writes the whole content to the path it is given.
    overwrite : bool, optional
        Replace an existing ``filename`` (default True); else OSError.

    Returns
    -------
    `~pathlib.Path`
        The target path.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from astro_clustercls.utils._files import atomic_write
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = atomic_write(pathlib.Path(d) / 'a.txt',
    ...                         lambda tmp: pathlib.Path(tmp).write_text('hi'))
    ...     path.read_text()
    'hi'
    """
    path = Path(filename).expanduser()
    if path.exists() and not overwrite:
        raise OSError(f"{str(path)!r} already exists; use overwrite=True to replace it")
    if not path.parent.exists():
        raise FileNotFoundError(f"directory {str(path.parent)!r} does not exist")
    if path.exists():
        mode = path.stat().st_mode & 0o777
    else:  # what open() would give: 0o666 less the umask (mkstemp uses 0o600)
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_all(writes, *, overwrite=True):
    """
    Write several files all or nothing.

    Every file is written to a temporary file next to its target; only when
    all are written are they moved into place. An error or an interrupt
    while writing leaves no partial file, no temporary file and every target
    as it was.

    Parameters
    ----------
    writes : mapping
        ``{filename: write}``, each ``write(tmp_path)`` writing one file.
    overwrite : bool, optional
        Replace existing files (default True); else OSError, before anything
        is written.

    Returns
    -------
    list of `~pathlib.Path`
        The targets, in the order of ``writes``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from astro_clustercls.utils._files import atomic_write_all
    >>> with tempfile.TemporaryDirectory() as d:
    ...     paths = atomic_write_all({
    ...         pathlib.Path(d) / name: (lambda tmp, n=name: pathlib.Path(tmp)
    ...                                  .write_text(n))
    ...         for name in ('a.txt', 'b.txt')})
    ...     [p.read_text() for p in paths]
    ['a.txt', 'b.txt']
    """
    items = [(Path(name).expanduser(), write) for name, write in writes.items()]
    seen = set()
    for path, _ in items:
        key = os.path.abspath(path)
        if key in seen:
            raise ValueError(f"{str(path)!r} is the target of two writes")
        seen.add(key)
        if path.exists() and not overwrite:
            raise OSError(f"{str(path)!r} already exists; use overwrite=True to "
                          "replace it")

    # each write runs inside the previous one's atomic_write: a failure
    # anywhere unwinds every temporary file before any target is replaced
    def chain(i):
        if i == len(items):
            return
        path, write = items[i]

        def write_then_rest(tmp):
            write(tmp)
            chain(i + 1)

        atomic_write(path, write_then_rest, overwrite=overwrite)

    chain(0)
    return [path for path, _ in items]
