"""Paths: run ids are names, one symlink policy for files and folders, every unread file named and
counted, and a run without a mirror that cannot download fails at once with the fix."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from curate.download import ChecksumError, DownloadError, fetch_source, get_source, is_retriable
from curate.paths import PathError, check_run_id, walk_source
from curate.pipeline import run_dir_for

ROW = {"instruction": "解释什么是光合作用。", "input": "", "output": "植物利用光能的过程。"}


@pytest.mark.parametrize("bad", ["../../x", "/tmp/x", "a/b", "..", ".", "x y", ".hidden", "a\\b"])
def test_run_ids_are_names_not_paths(tmp_path, bad):
    with pytest.raises(PathError, match="not a folder name"):
        check_run_id(bad)
    with pytest.raises(PathError):
        run_dir_for(tmp_path, {}, [], bad)


def test_a_plain_run_id_is_a_folder_under_the_data_dir(tmp_path):
    assert run_dir_for(tmp_path, {}, [], "my-run_2.v1") == tmp_path / "my-run_2.v1"


def test_cli_run_refuses_a_path_run_id_before_any_work(tmp_path, capsys):
    from flows.cli import main

    with pytest.raises(SystemExit, match="not a folder name"):
        main(["run", "--mirror", str(tmp_path), "--data-dir", str(tmp_path / "d"), "--run-id", "../../x"])
    assert not (tmp_path / "d").exists()


@pytest.fixture
def tree(tmp_path) -> tuple[Path, Path]:
    """A mirror with one source folder holding every kind of entry, and an outside folder."""
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "secret.json").write_text(json.dumps([ROW], ensure_ascii=False))
    (outside / "sub" / "more.json").write_text(json.dumps([ROW], ensure_ascii=False))
    m = tmp_path / "mirror"
    src = m / "belle"
    (src / "inner").mkdir(parents=True)
    (src / "a.json").write_text(json.dumps([ROW], ensure_ascii=False))
    (src / "inner" / "b.jsonl").write_text(json.dumps(ROW, ensure_ascii=False) + "\n")
    (src / "c.json.gz").write_bytes(gzip.compress(json.dumps([ROW], ensure_ascii=False).encode()))
    (src / "notes.txt").write_text("not data")
    (src / ".hidden.json").write_text("[]")
    (src / "link_in.json").symlink_to(src / "a.json")  # inside the mirror: followed
    (src / "dir_in").symlink_to(src / "inner")  # a folder inside the mirror: followed
    (src / "link_out.json").symlink_to(outside / "secret.json")  # outside: skipped, named
    (src / "dir_out").symlink_to(outside / "sub")  # a folder outside: skipped the same way
    (src / "dangling.json").symlink_to(tmp_path / "nowhere.json")
    (src / "loop").symlink_to(src)  # a loop back into the folder
    return m, outside


def test_one_symlink_policy_for_files_and_folders(tree, monkeypatch):
    m, _ = tree
    monkeypatch.delenv("TIGER_LINK_ROOTS", raising=False)
    found, skipped = walk_source(m / "belle", [m.resolve()])
    assert found == ["a.json", "c.json.gz", "dir_in/b.jsonl", "inner/b.jsonl", "link_in.json"]
    assert dict(skipped) == {".hidden.json": "hidden", "notes.txt": "not_data", "link_out.json": "symlink_outside_mirror",
                             "dir_out": "symlink_outside_mirror", "dangling.json": "broken_symlink",
                             "loop": "symlink_loop"}


def test_link_roots_let_a_mirror_of_links_into_another_mirror_work(tree, monkeypatch):
    m, outside = tree
    monkeypatch.setenv("TIGER_LINK_ROOTS", str(outside))
    skipped: list = []
    files = fetch_source(get_source("belle"), "/nonexistent", mirror=m, progress=False, skipped=skipped)
    assert {"link_out.json", "dir_out/more.json"} <= {f["file"] for f in files}
    assert {(s["file"], s["reason"]) for s in skipped} == {(".hidden.json", "hidden"), ("notes.txt", "not_data"),
                                                          ("dangling.json", "broken_symlink"), ("loop", "symlink_loop")}


def test_skipped_files_are_logged_and_counted_in_the_parse_ledger(tree, tmp_path, monkeypatch, caplog):
    from curate.pipeline import parse_stage

    m, _ = tree
    monkeypatch.delenv("TIGER_LINK_ROOTS", raising=False)
    (m / "belle" / "empty.json").write_text("")
    skipped: list = []
    with caplog.at_level("WARNING"):
        files = fetch_source(get_source("belle"), "/nonexistent", mirror=m, progress=False, skipped=skipped)
    assert "link_out.json (symlink_outside_mirror)" in caplog.text
    assert "secret" not in json.dumps(files)
    ledger = parse_stage(files, tmp_path / "01_parse", skipped=skipped)
    assert ledger["files"]["read"] == len(files) and ledger["files"]["empty"] == ["belle/empty.json"]
    assert "belle/dir_out (symlink_outside_mirror)" in ledger["files"]["skipped"]
    assert ledger["in"] == ledger["kept"] == 5  # a, c.json.gz, inner/b, dir_in/b, link_in


def test_retries_only_for_what_a_retry_can_fix():
    assert is_retriable(DownloadError("x: failed after 5 attempt(s)")) and is_retriable(TimeoutError())
    for exc in (ChecksumError("f", "a", "b"), FileNotFoundError("mirror folder"), KeyError("mydata"),
                ValueError("bad recipe")):
        assert not is_retriable(exc)


def test_offline_without_a_mirror_fails_at_once_with_the_hint(tmp_path, monkeypatch):
    """No mirror, no cached raw files, hosts that do not resolve: one line naming --mirror / TIGER_MIRROR."""
    import socket

    from flows import cli

    def no_dns(*a, **k):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.delenv("TIGER_MIRROR", raising=False)
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)  # the machine's own state, made certain
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--data-dir", str(tmp_path / "d")])
    assert "--mirror" in e.value.code and "TIGER_MIRROR" in e.value.code and "offline" in e.value.code
    assert not (tmp_path / "d").exists()


def test_prefect_retry_condition_sees_the_exception():
    """The download task's retry condition, on Prefect's own Failed states."""
    from prefect.states import Failed

    from flows.curate_flow import _retriable

    assert _retriable(None, None, Failed(data=DownloadError("u: failed after 5 attempt(s)")))
    assert not _retriable(None, None, Failed(data=FileNotFoundError("belle: mirror folder x not found")))
    assert not _retriable(None, None, Failed(data=ValueError("unknown source 'mydata' in the recipe")))
