"""--commit-file: a hash file or a git checkout, read without running git, bounded and contained.

The .git trees are built file by file as git 2.x lays them out (HEAD, refs/heads/*, packed-refs
with its header and peeled lines, worktrees/NAME with commondir, a worktree's `.git` file);
the last test checks the reader against `git rev-parse HEAD` on a repository made by git.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from exporter_agent import commit
from exporter_agent.commit import CommitError, read_commit
from tests.helpers import require_binary

MAIN = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
OTHER = "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"
TAG = "0123456789abcdef0123456789abcdef01234567"
PEELED = "fedcba9876543210fedcba9876543210fedcba98"
PACKED_HEADER = "# pack-refs with: peeled fully-peeled sorted \n"


def make_git_dir(
    git: Path,
    head: str = "ref: refs/heads/main",
    loose: dict[str, str] | None = None,
    packed: str | None = None,
) -> Path:
    """A git directory: HEAD, config, objects/, refs/{heads,tags}, loose refs, packed-refs."""
    for sub in ("objects/info", "objects/pack", "refs/heads", "refs/tags"):
        (git / sub).mkdir(parents=True, exist_ok=True)
    (git / "HEAD").write_text(head + "\n")
    (git / "config").write_text("[core]\n\trepositoryformatversion = 0\n\tbare = false\n")
    for name, value in (loose or {}).items():
        (git / name).parent.mkdir(parents=True, exist_ok=True)
        (git / name).write_text(value + "\n")
    if packed is not None:
        (git / "packed-refs").write_text(packed)
    return git


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A checkout on branch main, whose ref is a loose file."""
    make_git_dir(tmp_path / "app" / ".git", loose={"refs/heads/main": MAIN})
    return tmp_path / "app"


def test_a_file_holding_a_hash_is_read_and_lowercased(tmp_path):
    path = tmp_path / "REVISION"
    path.write_text(MAIN.upper() + "\n")
    assert read_commit(str(path)) == MAIN
    path.write_text("  abc1234\r\n")
    assert read_commit(str(path)) == "abc1234"


@pytest.mark.parametrize(
    "content", ["", "abc123", "g" * 40, "a" * 41, "main", "abc1234 def5678", "v1.2.3"]
)
def test_a_file_without_a_7_to_40_digit_hash_gives_none(tmp_path, content):
    path = tmp_path / "REVISION"
    path.write_text(content)
    with pytest.raises(CommitError, match="holds no commit hash"):
        read_commit(str(path))


def test_a_sha256_repository_is_named_as_the_reason(tmp_path):
    path = tmp_path / "REVISION"
    path.write_text("ab" * 32)
    with pytest.raises(CommitError, match="SHA-256"):
        read_commit(str(path))


def test_errors_never_quote_the_file(tmp_path):
    path = tmp_path / "secret"
    path.write_text("hunter2-the-database-password\n")
    with pytest.raises(CommitError) as caught:
        read_commit(str(path))
    assert "hunter2" not in str(caught.value)


def test_checkout_its_git_dir_and_its_head_file_all_give_the_loose_ref(checkout):
    for path in (checkout, checkout / ".git", checkout / ".git" / "HEAD"):
        assert read_commit(str(path)) == MAIN


def test_a_bare_repository(tmp_path):
    make_git_dir(tmp_path / "app.git", loose={"refs/heads/main": MAIN})
    assert read_commit(str(tmp_path / "app.git")) == MAIN


def test_a_packed_ref_is_found_past_tags_and_their_peeled_lines(tmp_path):
    packed = (
        PACKED_HEADER
        + f"{TAG} refs/tags/v1.0\n^{PEELED}\n"
        + f"{OTHER} refs/heads/feature\n"
        + f"{MAIN} refs/heads/main\n"
        + f"{OTHER} refs/remotes/origin/main\n"
    )
    make_git_dir(tmp_path / ".git", packed=packed)
    assert read_commit(str(tmp_path)) == MAIN


def test_a_loose_ref_wins_over_its_packed_copy(tmp_path):
    make_git_dir(
        tmp_path / ".git",
        loose={"refs/heads/main": OTHER},
        packed=PACKED_HEADER + f"{MAIN} refs/heads/main\n",
    )
    assert read_commit(str(tmp_path)) == OTHER


def test_a_packed_refs_file_without_a_final_newline(tmp_path):
    make_git_dir(tmp_path / ".git", packed=f"{MAIN} refs/heads/main")
    assert read_commit(str(tmp_path)) == MAIN


def test_a_branch_with_slashes(tmp_path):
    make_git_dir(
        tmp_path / ".git",
        head="ref: refs/heads/release/2026.01",
        loose={"refs/heads/release/2026.01": OTHER},
    )
    assert read_commit(str(tmp_path)) == OTHER


def test_a_detached_head(tmp_path):
    make_git_dir(tmp_path / ".git", head=OTHER, loose={"refs/heads/main": MAIN})
    assert read_commit(str(tmp_path)) == OTHER


def test_a_linked_worktree_reads_its_own_head_and_the_shared_refs(tmp_path):
    main = make_git_dir(
        tmp_path / "app" / ".git",
        loose={"refs/heads/main": MAIN},
        packed=PACKED_HEADER + f"{OTHER} refs/heads/hotfix\n",
    )
    admin = main / "worktrees" / "hotfix"
    admin.mkdir(parents=True)
    (admin / "HEAD").write_text("ref: refs/heads/hotfix\n")
    (admin / "commondir").write_text("../..\n")
    (admin / "gitdir").write_text(str(tmp_path / "hotfix" / ".git") + "\n")
    (tmp_path / "hotfix").mkdir()
    (tmp_path / "hotfix" / ".git").write_text(f"gitdir: {admin}\n")
    assert read_commit(str(tmp_path / "hotfix")) == OTHER
    assert read_commit(str(tmp_path / "hotfix" / ".git")) == OTHER
    assert read_commit(str(tmp_path / "app")) == MAIN
    (admin / "HEAD").write_text(MAIN + "\n")  # `git checkout --detach` in the worktree
    assert read_commit(str(tmp_path / "hotfix")) == MAIN


def test_a_submodule_gitdir_file_may_be_relative(tmp_path):
    make_git_dir(tmp_path / "app" / ".git" / "modules" / "lib", loose={"refs/heads/main": OTHER})
    (tmp_path / "app" / "lib").mkdir()
    (tmp_path / "app" / "lib" / ".git").write_text("gitdir: ../.git/modules/lib\n")
    assert read_commit(str(tmp_path / "app" / "lib")) == OTHER


def test_a_branch_without_commits_gives_none(tmp_path):
    make_git_dir(tmp_path / ".git", packed=PACKED_HEADER + f"{MAIN} refs/heads/other\n")
    with pytest.raises(CommitError, match="refs/heads/main not found"):
        read_commit(str(tmp_path))


def test_a_symbolic_ref_is_followed_a_few_times_only(tmp_path):
    make_git_dir(
        tmp_path / ".git",
        loose={"refs/heads/main": "ref: refs/heads/trunk", "refs/heads/trunk": OTHER},
    )
    assert read_commit(str(tmp_path)) == OTHER
    make_git_dir(
        tmp_path / "loop" / ".git",
        loose={
            "refs/heads/main": "ref: refs/heads/loop",
            "refs/heads/loop": "ref: refs/heads/main",
        },
    )
    with pytest.raises(CommitError, match="symbolic refs"):
        read_commit(str(tmp_path / "loop"))


@pytest.mark.parametrize(
    "head",
    [
        "garbage",
        "ref:",
        "ref: HEAD",
        "ref: refs/heads/../../../../etc/hostname",
        "ref: refs/heads/./main",
        "ref: /etc/hostname",
        "ref: refs//heads/main",
        "ref: refs/heads/.hidden",
        "ref: refs/heads/main\\..\\x",
    ],
)
def test_a_garbage_or_escaping_head_gives_none(tmp_path, head):
    make_git_dir(tmp_path / ".git", head=head, loose={"refs/heads/main": MAIN})
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hostname").write_text(OTHER + "\n")
    with pytest.raises(CommitError):
        read_commit(str(tmp_path))


def test_a_ref_symlinked_out_of_the_git_dir_is_not_followed(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.write_text(OTHER + "\n")
    git = make_git_dir(tmp_path / "app" / ".git")
    os.symlink(outside, git / "refs" / "heads" / "main")
    with pytest.raises(CommitError, match="leads outside"):
        read_commit(str(tmp_path / "app"))
    os.remove(git / "refs" / "heads" / "main")
    os.rmdir(git / "refs" / "heads")
    (tmp_path / "heads").mkdir()
    (tmp_path / "heads" / "main").write_text(OTHER + "\n")
    os.symlink(tmp_path / "heads", git / "refs" / "heads")
    with pytest.raises(CommitError, match="leads outside"):
        read_commit(str(tmp_path / "app"))


def test_a_directory_that_is_no_checkout(tmp_path):
    with pytest.raises(CommitError, match="neither a git checkout nor a git directory"):
        read_commit(str(tmp_path))


@pytest.mark.parametrize("content", ["gitdir:", "gitdir: /nonexistent/x", "gitdir:\n"])
def test_a_bad_gitdir_file(tmp_path, content):
    (tmp_path / ".git").write_text(content)
    with pytest.raises(CommitError, match="gitdir"):
        read_commit(str(tmp_path))


def test_a_missing_file_is_an_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_commit(str(tmp_path / "nope"))


def test_a_huge_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "REVISION"
    path.write_text(MAIN + "\n")
    os.truncate(path, 1 << 40)  # sparse: a reader that reads it all never returns
    with pytest.raises(CommitError, match="larger than 4096 bytes"):
        read_commit(str(path))


def test_a_huge_packed_refs_is_refused_without_reading_it(tmp_path):
    git = make_git_dir(tmp_path / ".git", packed=PACKED_HEADER)
    os.truncate(git / "packed-refs", 1 << 40)
    with pytest.raises(CommitError, match="packed-refs is larger than"):
        read_commit(str(tmp_path))


def test_a_huge_head_is_refused(tmp_path):
    make_git_dir(tmp_path / ".git", head="ref: refs/heads/main" + " " * 10_000)
    with pytest.raises(CommitError, match="larger than"):
        read_commit(str(tmp_path))


def test_a_fifo_or_a_device_is_never_opened(tmp_path):
    fifo = tmp_path / "REVISION"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes
    with pytest.raises(CommitError, match="not a regular file"):
        read_commit(str(fifo))
    with pytest.raises(CommitError, match="not a regular file"):
        read_commit("/dev/zero")
    git = make_git_dir(tmp_path / "app" / ".git")
    os.mkfifo(git / "refs" / "heads" / "main")
    with pytest.raises(CommitError, match="not a regular file"):
        read_commit(str(tmp_path / "app"))


def test_an_overlong_packed_line_cannot_smuggle_a_ref(tmp_path):
    # Its first MAX_LINE bytes end just before OTHER, so a reader that takes each chunk of
    # a long line for a line sees "OTHER refs/heads/main".
    smuggled = "x" * (commit.MAX_LINE - len(f"{TAG} refs/tags/")) + f"{OTHER} refs/heads/main"
    make_git_dir(
        tmp_path / ".git",
        packed=PACKED_HEADER + f"{TAG} refs/tags/{smuggled}\n{MAIN} refs/heads/main\n",
    )
    assert read_commit(str(tmp_path)) == MAIN


def test_packed_refs_are_scanned_up_to_a_limit(tmp_path, monkeypatch):
    filler = "".join(f"{TAG} refs/tags/v{n}\n" for n in range(2000))
    make_git_dir(tmp_path / ".git", packed=PACKED_HEADER + filler + f"{MAIN} refs/heads/main\n")
    assert read_commit(str(tmp_path)) == MAIN
    monkeypatch.setattr(commit, "MAX_PACKED_REFS", 10_000)
    with pytest.raises(CommitError, match="packed-refs is larger than 10000 bytes"):
        read_commit(str(tmp_path))


def test_agrees_with_git_rev_parse_on_a_real_repository(tmp_path):
    git = require_binary("git", "git")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    repo = tmp_path / "repo"

    def run(*args: str, cwd: Path = repo) -> str:
        return subprocess.run(
            [git, *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
        ).stdout.strip()

    repo.mkdir()
    run("init", "-q", "-b", "main")
    for n in range(3):
        (repo / "f").write_text(str(n))
        run("add", "f")
        run("commit", "-q", "-m", f"c{n}")
    run("tag", "-a", "-m", "release", "v1")
    assert read_commit(str(repo)) == run("rev-parse", "HEAD")  # loose ref
    run("pack-refs", "--all", "--prune")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert read_commit(str(repo)) == run("rev-parse", "HEAD")  # packed ref
    run("checkout", "-q", "--detach", "HEAD~1")
    assert read_commit(str(repo)) == run("rev-parse", "HEAD")  # detached
    run("worktree", "add", "-q", "-b", "hotfix", str(tmp_path / "wt"), "HEAD~1")
    (tmp_path / "wt" / "g").write_text("fix")
    run("add", "g", cwd=tmp_path / "wt")
    run("commit", "-q", "-m", "fix", cwd=tmp_path / "wt")
    assert read_commit(str(tmp_path / "wt")) == run("rev-parse", "HEAD", cwd=tmp_path / "wt")
    assert read_commit(str(tmp_path / "wt")) != read_commit(str(repo))
