"""The sync planner and its building blocks, without a server: paths, ignore rules, the scan,
the index and the plan for each mode."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pollinator_core.errors import UsageError
from pollinator_core.sync import index as index_mod
from pollinator_core.sync.ignore import IgnoreRules
from pollinator_core.sync.index import Index, hash_tree
from pollinator_core.sync.paths import local_target, remote_relpath
from pollinator_core.sync.plan import Kind, Mode, conflict_name, make_plan
from pollinator_core.sync.remote import RemoteTree, build_tree
from pollinator_core.sync.scan import scan

ROOT = "/pollinator/p/src"


# --- paths -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "name"),
    [
        (ROOT, ".."),
        (ROOT, "."),
        (ROOT, "a/b"),
        (ROOT, "a\\b"),
        (ROOT, "a\x00b"),
        (ROOT, ""),
        (ROOT + "/..", "x"),
        (ROOT + "/a/../../x", "x"),
        (ROOT + "//etc", "passwd"),
        (ROOT + "/a\\..\\..", "x"),
        (ROOT + "/a\x00", "x"),
    ],
)
def test_remote_names_that_escape_are_refused_naming_the_record(label: str, name: str) -> None:
    with pytest.raises(UsageError) as err:
        remote_relpath(ROOT, label, name)
    assert "refusing remote" in str(err.value)
    assert repr(name) in str(err.value) or repr(label) in str(err.value)


def test_remote_names_inside_the_tree_map_to_relative_paths() -> None:
    assert remote_relpath(ROOT, ROOT, "main.py") == "main.py"
    assert remote_relpath(ROOT, ROOT + "/a/b", "c.txt") == "a/b/c.txt"
    assert remote_relpath(ROOT, ROOT + "/..a", "..b") == "..a/..b"  # dots in names are fine


def test_local_target_refuses_a_symlinked_directory_leading_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(UsageError, match="outside"):
        local_target(root, "link/x.txt")
    assert local_target(root, "sub/x.txt") == root / "sub" / "x.txt"


# --- ignore rules ------------------------------------------------------------------------------


def test_default_ignores() -> None:
    rules = IgnoreRules.for_tree(Path("/nowhere"))
    assert rules.ignored(".git", True)
    assert rules.ignored("a/__pycache__", True)
    assert rules.ignored(".venv", True)
    assert rules.ignored("a/b.pyc", False)
    assert rules.ignored(".pollinator", True)
    assert not rules.ignored("a/b.py", False)
    assert not rules.ignored(".gitignore", False)


def test_nested_ignore_files_and_negation(tmp_path: Path) -> None:
    tree = tmp_path / "cfs" / "src"
    tree.mkdir(parents=True)
    (tmp_path / ".pollinatorignore").write_text("cfs/src/big/\n*.log\n")
    rules = IgnoreRules.for_tree(tree, tmp_path)
    assert rules.ignored("big", True)
    assert rules.ignored("x/y.log", False)
    assert not rules.ignored("x/big", True)  # anchored at the project root: only cfs/src/big
    deeper = rules.below("x", ["!keep.log", "*.tmp"])
    assert not deeper.ignored("x/keep.log", False)
    assert deeper.ignored("x/other.log", False)
    assert deeper.ignored("x/a.tmp", False)
    assert not deeper.ignored("a.tmp", False)  # x's rules stay in x
    assert not rules.below("", ["!*.pyc"]).ignored("a.pyc", False)  # defaults can be undone


# --- scan --------------------------------------------------------------------------------------


def _write(root: Path, rel: str, data: str = "x") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)
    return path


def test_scan_skips_ignored_reserved_and_outside_symlinks(tmp_path: Path) -> None:
    project = tmp_path / "project"
    tree = project / "cfs" / "src"
    _write(tree, "a.py")
    _write(tree, "pkg/b.py")
    _write(tree, "pkg/__pycache__/b.cpython-311.pyc")
    _write(tree, ".cfs", '{"label": "x"}')
    _write(tree, "logs/run.log")
    _write(tree, ".pollinatorignore", "logs/\n")
    (tree / "empty" / "deeper").mkdir(parents=True)
    (tree / "only-ignored" / "__pycache__").mkdir(parents=True)
    secret = _write(tmp_path, "secret.txt")
    (tree / "leak.txt").symlink_to(secret)
    (tree / "leakdir").symlink_to(tmp_path)
    (tree / "inside.txt").symlink_to(tree / "a.py")
    (tree / "dangling").symlink_to(tmp_path / "missing")
    state = project / ".pollinator"
    state.mkdir()
    found = scan(tree, IgnoreRules.for_tree(tree, project), boundary=project, exclude=(state,))
    assert sorted(found.files) == [".pollinatorignore", "a.py", "inside.txt", "pkg/b.py"]
    assert found.empty_dirs == {"empty/deeper", "only-ignored"}
    assert dict(found.skipped) == {
        "leak.txt": "symlink pointing outside the project",
        "leakdir": "symlink pointing outside the project",
        "dangling": "dangling symlink",
    }


def test_scan_marks_a_root_without_files_of_its_own(tmp_path: Path) -> None:
    _write(tmp_path, "sub/a.txt")
    assert scan(tmp_path, IgnoreRules.for_tree(tmp_path)).empty_dirs == {""}
    _write(tmp_path, "top.txt")
    assert scan(tmp_path, IgnoreRules.for_tree(tmp_path)).empty_dirs == set()


def test_scan_skips_names_a_label_cannot_carry(tmp_path: Path) -> None:
    _write(tmp_path, "back\\slash.txt")
    found = scan(tmp_path, IgnoreRules.for_tree(tmp_path))
    assert found.files == {}
    assert found.skipped == [("back\\slash.txt", "a backslash in its name")]


# --- index -------------------------------------------------------------------------------------


@pytest.fixture
def trusting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust fresh stat keys at once (the racy-timestamp guard needs 2 s of age)."""
    monkeypatch.setattr(index_mod, "RACY_NS", -(10**18))


def _hash(tree: Path, index: Index, rehash: bool = False) -> dict[str, str]:
    found = scan(tree, IgnoreRules.for_tree(tree))
    return hash_tree(tree, found.files, index, rehash=rehash, workers=2)


def test_index_round_trip_and_reuse(tmp_path: Path, trusting: None) -> None:
    tree = tmp_path / "t"
    _write(tree, "a.txt", "one")
    path = tmp_path / "index.json"
    index = Index.load(path, "id")
    shas = _hash(tree, index)
    index.base["a.txt"] = shas["a.txt"]
    index.save()
    again = Index.load(path, "id")
    assert again.files == index.files and again.base == index.base
    assert Index.load(path, "other").base == {}  # another server or label: base dropped
    assert Index.load(path, "other").files == index.files  # stat cache stays valid


def test_same_size_same_mtime_change_is_caught_by_ctime(tmp_path: Path, trusting: None) -> None:
    tree = tmp_path / "t"
    path = _write(tree, "a.txt", "aaaa")
    index = Index(None, "id")
    first = _hash(tree, index)["a.txt"]
    st = path.stat()
    path.write_text("bbbb")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # put mtime back: only ctime moves
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size
    assert _hash(tree, index)["a.txt"] != first


def test_checksum_rehashes_what_the_index_vouches_for(tmp_path: Path, trusting: None) -> None:
    tree = tmp_path / "t"
    path = _write(tree, "a.txt", "aaaa")
    index = Index(None, "id")
    first = _hash(tree, index)["a.txt"]
    path.write_text("bbbb")
    key = index.files["a.txt"]
    st = path.stat()
    # A change behind the index's back: the entry claims the new stat key with the old sha.
    index.files["a.txt"] = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, key[4])
    assert _hash(tree, index)["a.txt"] == first
    assert _hash(tree, index, rehash=True)["a.txt"] != first


def test_fresh_files_are_not_trusted_until_their_timestamps_age(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    _write(tree, "a.txt")
    index = Index(None, "id")
    _hash(tree, index)
    assert index.files == {}  # written just now: a same-tick rewrite could hide


def test_index_of_10000_files_loads_fast(tmp_path: Path) -> None:
    path = tmp_path / "index.json"
    doc = {
        "version": index_mod.VERSION,
        "identity": "id",
        "files": {f"d{i // 10}/f{i}.txt": [7000, 1, i, 1, "ab" * 32] for i in range(10_000)},
        "base": {f"d{i // 10}/f{i}.txt": "ab" * 32 for i in range(10_000)},
        "remote": {},
    }
    path.write_text(json.dumps(doc))
    import time

    started = time.perf_counter()
    index = Index.load(path, "id")
    assert time.perf_counter() - started < 0.25
    assert len(index.files) == 10_000


# --- plan --------------------------------------------------------------------------------------


def _remote(files: dict[str, str], markers: tuple[str, ...] = ()) -> RemoteTree:
    listing: dict[str, dict[str, tuple[str, int, str]]] = {}
    for rel, sha in files.items():
        sub, _, name = rel.rpartition("/")
        label = f"{ROOT}/{sub}" if sub else ROOT
        listing.setdefault(label, {})[name] = (sha, 1, sha)
    for d in markers:
        listing.setdefault(f"{ROOT}/{d}" if d else ROOT, {})[".cfs"] = ("m", 10, "m")
    return build_tree(ROOT, listing)


def _local(files: dict[str, str]) -> dict[str, tuple[str, int]]:
    return {rel: (sha, 1) for rel, sha in files.items()}


def _summary(plan: object) -> list[tuple[str, str, str]]:
    return [(a.kind.value, a.rel, a.reason) for a in plan.actions]  # type: ignore[attr-defined]


def test_mirror_uploads_new_and_changed_and_removes_deleted() -> None:
    plan = make_plan(
        Mode.MIRROR,
        _local({"a": "1", "b": "2", "d/e": "5"}),
        set(),
        _remote({"a": "1", "b": "old", "c": "3"}),
        {},
    )
    assert _summary(plan) == [
        ("upload", "b", "changed"),
        ("upload", "d/e", "new"),
        ("remove", "c", "deleted"),
    ]
    assert plan.agreed == {"a": "1"}


def test_mirror_keeps_empty_dirs_as_markers() -> None:
    plan = make_plan(
        Mode.MIRROR,
        _local({"x/f": "1"}),
        {"empty", "gone-marker-kept"},
        _remote({}, markers=("gone-marker-kept", "x", "vanished")),
        {},
    )
    assert _summary(plan) == [
        ("upload", "x/f", "new"),
        ("mark", "empty", "new"),
        ("unmark", "vanished", "deleted"),
        ("unmark", "x", "not empty"),
    ]


def test_push_keeps_remote_only_files_unless_delete() -> None:
    local, remote = _local({"a": "1"}), _remote({"a": "0", "old": "2"})
    plan = make_plan(Mode.PUSH, local, set(), remote, {})
    assert _summary(plan) == [("upload", "a", "changed")]
    assert plan.kept_remote == 1
    plan = make_plan(Mode.PUSH, local, set(), remote, {}, delete=True)
    assert _summary(plan) == [("upload", "a", "changed"), ("remove", "old", "deleted")]


def test_pull_downloads_new_and_changed_and_keeps_local_edits() -> None:
    local = _local(
        {"same": "1", "stale": "old", "edited": "mine", "never-pulled": "x", "mine": "9"}
    )
    remote = _remote(
        {"same": "1", "stale": "new", "edited": "theirs", "never-pulled": "y", "n": "5"}
    )
    base = {"stale": "old", "edited": "before"}
    plan = make_plan(Mode.PULL, local, set(), remote, base)
    assert _summary(plan) == [
        ("download", "edited", "conflict"),
        ("download", "never-pulled", "conflict"),
        ("download", "stale", "changed"),
        ("download", "n", "new"),
    ]
    conflict = plan.actions[0]
    assert conflict.target == conflict_name("edited", "theirs") == "edited.remote-theirs"


def test_pull_does_not_resurrect_local_deletions_nor_repeat_conflicts() -> None:
    base = {"deleted": "1", "changed-remotely": "1"}
    remote = _remote({"deleted": "1", "changed-remotely": "2", "c": "new"})
    local = _local({"c": "mine", conflict_name("c", "new"): "new"})
    plan = make_plan(Mode.PULL, local, set(), remote, base)
    assert _summary(plan) == [("download", "changed-remotely", "new")]


def test_pull_creates_empty_dirs_once() -> None:
    remote = _remote({"sub/f": "1"}, markers=("", "empty"))
    assert _summary(make_plan(Mode.PULL, {}, set(), remote, {})) == [
        ("download", "sub/f", "new"),
        ("mkdir", "", "new"),
        ("mkdir", "empty", "new"),
    ]
    assert _summary(make_plan(Mode.PULL, _local({"sub/f": "1"}), {"", "empty"}, remote, {})) == []


@pytest.mark.parametrize("keeplocal", [True, False])
def test_merge_is_the_official_two_way_sync(keeplocal: bool) -> None:
    plan = make_plan(
        Mode.MERGE,
        _local({"both": "l", "local-only": "1"}),
        set(),
        _remote({"both": "r", "remote-only": "2"}),
        {},
        keeplocal=keeplocal,
    )
    expected_both = ("upload", "both", "changed") if keeplocal else ("download", "both", "changed")
    assert sorted(_summary(plan)) == sorted(
        [expected_both, ("upload", "local-only", "new"), ("download", "remote-only", "new")]
    )
    assert not plan.of(Kind.REMOVE)


def test_progress_only_on_a_terminal_and_not_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    from pollinator_core.sync.progress import NoProgress, RichProgress, make_progress

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert isinstance(make_progress(False), NoProgress)
    tty = io.StringIO()
    tty.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr(sys, "stderr", tty)
    assert isinstance(make_progress(False), RichProgress)
    assert isinstance(make_progress(True), NoProgress)


def test_scan_follows_directory_links_inside_but_not_loops(tmp_path: Path) -> None:
    _write(tmp_path, "real/a.txt")
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    (tmp_path / "real" / "up").symlink_to(tmp_path)
    found = scan(tmp_path, IgnoreRules.for_tree(tmp_path))
    assert sorted(found.files) == ["alias/a.txt", "real/a.txt"]
    assert dict(found.skipped) == {"alias/up": "symlink loop", "real/up": "symlink loop"}
