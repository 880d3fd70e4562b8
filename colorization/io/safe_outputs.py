"""The one place every command checks and writes its outputs: outputs never replace inputs, writes are atomic.

Every command that writes files calls :func:`check_output_dir` or :func:`check_output_file` on each output path
BEFORE it starts Ray or any compute, so a bad path costs the user nothing but one :class:`UserError` line. It then
writes through :func:`atomic_write` (or :func:`write_bytes_atomic`, :func:`write_text_atomic`,
:func:`write_json_atomic`): the bytes go to a temporary file in the same folder, which ``os.replace`` then moves
into place, so a reader (or a rerun after a crash) sees either the old file or the complete new one, never half.

:func:`output_names` maps input files to output files for batch commands without two inputs sharing an output.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

from colorization.errors import UserError

__all__ = [
    "atomic_write",
    "check_output_dir",
    "check_output_file",
    "output_names",
    "resolve_path",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]

PathLike = str | os.PathLike


def resolve_path(path: PathLike, what: str = "path") -> Path:
    """``path`` with ``~`` expanded and every symlink resolved (it need not exist).

    Args:
        path: any path the user gave.
        what: how error messages name it (e.g. "output folder").

    Returns:
        The absolute, resolved path.

    Raises:
        UserError: a symlink loop (or another OS error) makes the path unresolvable.
    """
    try:
        return Path(path).expanduser().resolve()
    except RuntimeError:  # Python < 3.13 reports a symlink loop this way
        raise UserError(f"{what} {path}: symlink loop") from None
    except OSError as error:
        raise UserError(f"{what} {path}: cannot resolve ({error.strerror or error})") from None


def _resolved_inputs(inputs: Iterable[PathLike]) -> list[tuple[PathLike, Path]]:
    return [(given, resolve_path(given, "input")) for given in inputs]


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or "/")


def _check_writable_folder(path: Path, given: PathLike, what: str) -> None:
    """UserError unless ``path``'s nearest existing folder accepts new files.

    ``os.access`` alone is wrong for root (it always says yes) and on read-only mounts, so this also creates and
    removes a probe file; nothing is left behind.
    """
    existing = _nearest_existing(path)
    if not existing.is_dir():
        raise UserError(f"{what} {given}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{what} {given}: folder {existing} is not writable")
    try:
        descriptor, probe = tempfile.mkstemp(prefix=".colorization-probe-", dir=existing)
    except OSError as error:
        raise UserError(f"{what} {given}: folder {existing} is not writable ({error.strerror or error})") from None
    os.close(descriptor)
    os.unlink(probe)


def check_output_dir(path: PathLike, *, inputs: Iterable[PathLike] = (), what: str = "output folder") -> Path:
    """Checks an output folder before any work starts; returns it resolved (symlinks followed).

    Args:
        path: the folder the command will create or write into.
        inputs: every input file or folder of the command; the output may not equal, lie inside or contain one.
        what: how the error message names the folder (e.g. "--out").

    Returns:
        The resolved folder (not created).

    Raises:
        UserError: it is a file; it equals, lies inside or contains an input; its nearest existing parent is
            not a writable folder; or its path cannot be resolved (symlink loop).
    """
    resolved = resolve_path(path, what)
    if resolved.exists() and not resolved.is_dir():
        raise UserError(f"{what} {path} is a file, not a folder")
    for given, source in _resolved_inputs(inputs):
        if resolved == source:
            raise UserError(f"{what} {path} is the input {given}; choose a new folder")
        if source in resolved.parents:
            raise UserError(f"{what} {path} lies inside the input {given}; choose a folder outside it")
        if resolved in source.parents:
            raise UserError(f"{what} {path} contains the input {given}; choose a folder that does not")
    _check_writable_folder(resolved, path, what)
    return resolved


def check_output_file(
    path: PathLike,
    *,
    inputs: Iterable[PathLike] = (),
    suffixes: Iterable[str] = (),
    what: str = "output file",
    inside_inputs_ok: bool = False,
) -> Path:
    """Checks an output file before any work starts; returns it resolved (symlinks followed).

    Args:
        path: the file the command will (re)write.
        inputs: every input file or folder of the command; the output may not be one of them, nor lie inside
            an input folder unless ``inside_inputs_ok``.
        suffixes: accepted suffixes (case-insensitive, with the dot, e.g. ``(".json",)``); empty accepts any.
        what: how the error message names the file (e.g. "--json").
        inside_inputs_ok: allow the file inside an input folder (it can never replace an input file).

    Returns:
        The resolved file path (not created).

    Raises:
        UserError: a folder exists at that path; the suffix is not accepted; it is an input or lies inside an
            input folder; its folder is not writable; or its path cannot be resolved.
    """
    resolved = resolve_path(path, what)
    if resolved.is_dir():
        raise UserError(f"{what} {path} is a folder, not a file")
    sources = _resolved_inputs(inputs)
    for given, source in sources:
        if resolved == source:
            raise UserError(f"{what} {path} is the input {given}; outputs never replace inputs")
    for given, source in sources:
        if not inside_inputs_ok and source in resolved.parents:
            raise UserError(f"{what} {path} lies inside the input folder {given}; write it elsewhere")
    accepted = tuple(suffix.lower() for suffix in suffixes)
    if accepted and resolved.suffix.lower() not in accepted:
        raise UserError(f"{what} {path} must end in {' or '.join(accepted)}")
    _check_writable_folder(resolved.parent, path, what)
    return resolved


@contextlib.contextmanager
def atomic_write(path: PathLike) -> Iterator[Path]:
    """Yields a temporary path next to ``path``; on success moves it onto ``path`` with ``os.replace``.

    The temporary name keeps ``path``'s suffix, so writers that pick the format from it (PIL, ``np.savez``,
    safetensors) behave as for the real name. On an exception the temporary file is removed and ``path`` is
    untouched. Missing parent folders are created.

    Args:
        path: the final file.

    Yields:
        The temporary path to write (it does not exist yet).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f".{final.stem}.tmp-{os.getpid()}-{secrets.token_hex(4)}{final.suffix}")
    try:
        yield temporary
        os.replace(temporary, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def write_bytes_atomic(path: PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path) as temporary:
        temporary.write_bytes(data)


def write_text_atomic(path: PathLike, text: str) -> None:
    """Writes UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: PathLike, record: dict) -> None:
    """Writes ``record`` as indented JSON (one trailing newline) to ``path`` atomically."""
    write_text_atomic(path, json.dumps(record, indent=1, sort_keys=False) + "\n")


def output_names(relative_paths: Iterable[PathLike], suffix: str) -> dict[PathLike, str]:
    """Output names for input files: same relative tree, new suffix, never two inputs on one output.

    The rule, deterministic for a given set of inputs (order does not matter):

    1. ``dir/name.ext`` becomes ``dir/name<suffix>`` (``a.jpg`` -> ``a.png``).
    2. Inputs whose outputs would coincide (compared case-insensitively, as on macOS and Windows disks) all keep
       their full name instead: ``a.jpg`` -> ``a.jpg.png`` and ``a.jpeg`` -> ``a.jpeg.png``.
    3. Should a name still coincide with another, inputs in sorted order get ``-2``, ``-3``, ... before the
       suffix (``a.jpg-2.png``).

    Args:
        relative_paths: input paths relative to their input root ("/"-separated strings or paths).
        suffix: the output suffix with its dot, e.g. ``".png"``.

    Returns:
        Each given relative path -> its output relative path ("/"-separated string).
    """
    given = list(dict.fromkeys(relative_paths))
    posix = {item: PurePosixPath(Path(item).as_posix()) for item in given}

    def key(name: str) -> str:
        return name.casefold()

    short = {item: str(path.with_suffix(suffix)) if path.suffix else f"{path}{suffix}" for item, path in posix.items()}
    counts: dict[str, int] = {}
    for name in short.values():
        counts[key(name)] = counts.get(key(name), 0) + 1
    chosen = {item: name if counts[key(name)] == 1 else f"{posix[item]}{suffix}" for item, name in short.items()}

    taken: set[str] = set()
    result: dict[PathLike, str] = {}
    for item in sorted(given, key=lambda entry: str(posix[entry])):
        name, number = chosen[item], 1
        while key(name) in taken:
            number += 1
            name = f"{posix[item]}-{number}{suffix}"
        taken.add(key(name))
        result[item] = name
    return {item: result[item] for item in given}
