"""The commit a box runs, for ``--commit-file``: a file holding a hash, or a git checkout.

A checkout is read the way git itself resolves ``HEAD``, without running git (which may be
missing, slow, or refuse a repository owned by another user): ``HEAD`` holds a hash (detached)
or ``ref: refs/heads/NAME``, which is looked up as a loose ref file, then in ``packed-refs``
(``^`` lines peel tags and are skipped). The path may be the checkout, its ``.git`` directory,
a bare repository, or a linked worktree or submodule whose ``.git`` file says ``gitdir: …``
(refs then live in the ``commondir`` it names).

The file is read again for every heartbeat, because a deploy changes it, so reading is
bounded: only regular files are opened (a FIFO or device would block or never end), small
files are refused past ``MAX_SMALL_FILE`` bytes and ``packed-refs`` past ``MAX_PACKED_REFS``,
and nothing is read but ``HEAD`` and the ref it names, whose path must stay inside the git
directory. Errors never quote a file's content: a misconfigured path may name a secret.
"""

import os
import re
import stat

HASH = re.compile(r"[0-9a-f]{7,40}")
MAX_SMALL_FILE = 4096
MAX_PACKED_REFS = 64 * 1024 * 1024
MAX_LINE = 4096
MAX_SYMREF_DEPTH = 5
# git check-ref-format's rules, as far as they matter for reading: no control characters,
# spaces or ~^:?*[\, and no empty, "." or ".."-like component that could leave refs/.
_COMPONENT = r"[^\x00-\x20\x7f~^:?*\[\\/.][^\x00-\x20\x7f~^:?*\[\\/]*"
REF_NAME = re.compile(rf"refs(?:/{_COMPONENT})+")


class CommitError(ValueError):
    """The commit file gives no commit hash; the message says why, for the operator."""


def read_commit(path: str) -> str:
    """Return the lowercase commit hash that ``path`` (a hash file or git checkout) names.

    Raises CommitError when it names none, OSError when a file cannot be read.
    """
    if os.path.isdir(path):
        return _resolve_head(_git_dir_of(path))
    text = _read_small(path)
    if text.startswith("gitdir:"):
        return _resolve_head(_linked_git_dir(path, text))
    if text.startswith("ref:") and os.path.basename(path) == "HEAD":
        return _resolve_head(os.path.dirname(path) or ".")
    return _hash(text, path)


def _git_dir_of(directory: str) -> str:
    """The git directory of a checkout, or ``directory`` itself when it is one."""
    dot_git = os.path.join(directory, ".git")
    if os.path.isdir(dot_git):
        return dot_git
    if os.path.lexists(dot_git):
        return _linked_git_dir(dot_git, _read_small(dot_git))
    if os.path.lexists(os.path.join(directory, "HEAD")):
        return directory
    raise CommitError(f"{directory} is neither a git checkout nor a git directory")


def _linked_git_dir(git_file: str, text: str) -> str:
    """The directory a worktree's or submodule's ``.git`` file points to (``gitdir: PATH``)."""
    first = text.splitlines()[0] if text else ""
    target = first.removeprefix("gitdir:").strip()
    if not first.startswith("gitdir:") or not target:
        raise CommitError(f"{git_file} is not a 'gitdir: PATH' file")
    git_dir = os.path.join(os.path.dirname(git_file), target)
    if not os.path.isdir(git_dir):
        raise CommitError(f"{git_file} points to {git_dir}, which is not a directory")
    return git_dir


def _common_dir(git_dir: str) -> str:
    """Where a linked worktree's branches live (its ``commondir`` file), else ``git_dir``."""
    pointer = os.path.join(git_dir, "commondir")
    if not os.path.lexists(pointer):
        return git_dir
    target = _read_small(pointer).strip()
    common = os.path.join(git_dir, target)
    if not target or not os.path.isdir(common):
        raise CommitError(f"{pointer} does not name a directory")
    return common


def _resolve_head(git_dir: str) -> str:
    """Follow ``HEAD`` (and at most a few symbolic refs) to a commit hash."""
    common = _common_dir(git_dir)
    text, name = _inside(git_dir, "HEAD"), "HEAD"
    if text is None:
        raise CommitError(f"{git_dir} has no HEAD")
    for _ in range(MAX_SYMREF_DEPTH):
        if not text.startswith("ref:"):
            return _hash(text, f"{name} in {git_dir}")
        name = text.removeprefix("ref:").strip()
        if not REF_NAME.fullmatch(name) or len(name) > MAX_LINE:
            raise CommitError(f"HEAD in {git_dir} names no valid ref")
        text = _find_ref(git_dir, common, name)
    raise CommitError(f"more than {MAX_SYMREF_DEPTH} symbolic refs from HEAD in {git_dir}")


def _find_ref(git_dir: str, common: str, name: str) -> str:
    """A ref's content: the loose file (per-worktree first, then shared), else packed-refs."""
    for base in dict.fromkeys((git_dir, common)):
        loose = _inside(base, name)
        if loose is not None:
            return loose
    packed = _packed_ref(common, name)
    if packed is None:
        raise CommitError(f"{name} not found in {common} (a branch without commits?)")
    return packed


def _inside(base: str, relative: str) -> str | None:
    """Content of ``base/relative``, None if absent; refused if a link leads out of ``base``."""
    path = os.path.join(base, *relative.split("/"))
    if not os.path.lexists(path):
        return None
    real_base = os.path.realpath(base)
    if os.path.commonpath((real_base, os.path.realpath(path))) != real_base:
        raise CommitError(f"{path} leads outside {base}")
    return _read_small(path)


def _packed_ref(common: str, name: str) -> str | None:
    """The hash ``packed-refs`` gives ``name``, read line by line with bounded memory."""
    path = os.path.join(common, "packed-refs")
    if not os.path.lexists(path):
        return None
    wanted = name.encode()
    scanned = 0
    at_line_start = True
    with os.fdopen(_open_regular(path), "rb") as handle:
        while line := handle.readline(MAX_LINE):
            scanned += len(line)
            if scanned > MAX_PACKED_REFS:
                raise CommitError(f"{path} is larger than {MAX_PACKED_REFS} bytes")
            # A whole line starts after a newline and ends with one (or with the file).
            whole = at_line_start and (line.endswith(b"\n") or len(line) < MAX_LINE)
            at_line_start = line.endswith(b"\n")
            if not whole or line.startswith((b"#", b"^")):
                continue  # part of an overlong line, a comment, or a peeled tag
            value, _, ref = line.rstrip(b"\r\n").partition(b" ")
            if ref == wanted:
                return value.decode("ascii", "replace")
    return None


def _open_regular(path: str) -> int:
    """Open ``path`` for reading only if it is a regular file (a FIFO would block forever)."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise CommitError(f"{path} is not a regular file")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    # Checked again on the open file: the path may have been swapped in between.
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CommitError(f"{path} is not a regular file")
    return fd


def _read_small(path: str) -> str:
    """A small regular file's text; refused past MAX_SMALL_FILE bytes."""
    with os.fdopen(_open_regular(path), "rb") as handle:
        data = handle.read(MAX_SMALL_FILE + 1)
    if len(data) > MAX_SMALL_FILE:
        raise CommitError(f"{path} is larger than {MAX_SMALL_FILE} bytes")
    return data.decode("utf-8", "replace")


def _hash(text: str, where: str) -> str:
    value = text.strip().lower()
    if HASH.fullmatch(value):
        return value
    if re.fullmatch(r"[0-9a-f]{64}", value):
        raise CommitError(f"{where} holds a SHA-256 hash; control accepts 7 to 40 hex digits")
    raise CommitError(f"{where} holds no commit hash (7 to 40 hex digits)")
