"""The command line's error paths: one line naming the problem and the fix, a non-zero exit."""
from __future__ import annotations

import pytest

from curate.io import write_json, write_parquet
from curate.records import drop_frame, make_record, records_frame
from flows.cli import main


def _run(capsys, *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    out = capsys.readouterr()
    msg = e.value.code if isinstance(e.value.code, str) else out.out + out.err
    return (1 if isinstance(e.value.code, str) else e.value.code), msg


@pytest.fixture
def run_folder(tmp_path):
    """A finished run's folder as `tiger dropped` reads it: the manifest and one stage's dropped rows."""
    run = tmp_path / "run-x"
    write_json(run / "manifest.json", {"run_id": "run-x", "ledger": []})
    rows = records_frame([make_record("belle", "f.json", 0, "Translate this", "", "ok")])
    write_parquet(run / "03_filter" / "dropped.parquet", drop_frame(rows, "03_filter/chinese_language_filter",
                                                                    "not_chinese", "langdetect:en"))
    return run


def test_version(capsys):
    code, out = _run(capsys, "--version")
    assert code == 0 and out.startswith("tiger ")


@pytest.mark.parametrize("cmd", ["ledger", "report", "dropped"])
def test_a_missing_run_folder_is_one_line(capsys, tmp_path, cmd):
    code, msg = _run(capsys, cmd, str(tmp_path / "nope"))
    assert code != 0 and "\n" not in msg.strip()
    assert msg.startswith(f"tiger {cmd}: run folder {tmp_path / 'nope'} does not exist")
    (tmp_path / "half").mkdir()
    code, msg = _run(capsys, cmd, str(tmp_path / "half"))
    assert code != 0 and "has no manifest.json" in msg


def test_misspelled_stage_or_reason_lists_the_valid_ones(capsys, run_folder):
    code, msg = _run(capsys, "dropped", str(run_folder), "--stage", "03_filtr")
    assert code != 0 and "no stage '03_filtr'; the stages are 01_parse, 02_normalize, 03_filter" in msg
    code, msg = _run(capsys, "dropped", str(run_folder), "--reason", "not_chines")
    assert code != 0 and "no reason 'not_chines' in this run; its reasons are not_chinese" in msg
    main(["dropped", str(run_folder), "--reason", "not_chinese"])  # the right name works
    assert "langdetect:en" in capsys.readouterr().out


def test_a_bad_recipe_stops_the_run_before_any_work(capsys, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("sources: [belle]\nfilters: []\n", encoding="utf-8")
    code, msg = _run(capsys, "run", "--recipe", str(recipe), "--mirror", str(tmp_path), "--data-dir", str(tmp_path / "d"))
    assert code != 0 and "r.yaml:2: unknown key 'filters' (did you mean 'filter'?)" in msg
    assert not (tmp_path / "d").exists()


def test_the_run_summary_names_every_stage_with_its_rows_and_seconds():
    from flows.curate_flow import summary

    ledgers = [{"stage": "01_parse", "in": 1200, "kept": 1100, "dropped": 100},
               {"stage": "02_normalize", "in": 1100, "kept": 1100, "dropped": 0}]
    text = summary(ledgers, [1.25, 0.0], [{"name": "random-100", "rows": 100}], "/r/report/report.html")
    lines = text.splitlines()
    assert lines[1].split() == ["01_parse", "1,200", "1,100", "100", "1.2"]
    assert lines[2].split() == ["02_normalize", "1,100", "1,100", "0", "0.0"]
    assert lines[-2] == "mixtures: random-100 (100)" and lines[-1] == "report: /r/report/report.html"


def test_report_takes_a_tokenizer_and_names_a_missing_one(capsys, tmp_path):
    write_json(tmp_path / "run" / "manifest.json", {"run_id": "run", "ledger": []})
    code, msg = _run(capsys, "report", str(tmp_path / "run"), "--tokenizer", str(tmp_path / "nope"))
    assert code != 0 and f"no tokenizer.json at {tmp_path / 'nope'}" in msg


def test_curation_commands_do_not_build_the_training_commands(run_folder):
    """`tiger run`, `tiger ledger` and the other curation commands start without the training
    commands' parsers, whose configs import torch (seconds before `tiger run` could launch its API
    server); `tiger --help` and the training commands still get them."""
    import subprocess
    import sys

    from flows.settings import PROJECT_ROOT

    probe = ("import sys\nfrom flows.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "print('torch' in sys.modules)")

    def run(*argv: str) -> list[str]:
        out = subprocess.run([sys.executable, "-c", probe, *argv], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().splitlines()

    ledger = run("ledger", str(run_folder))
    assert ledger[-1] == "False" and any("stage" in line for line in ledger[:-1])
    assert run("--debug", "run", "--help")[-1] == "False"
    helped = run("--help")
    assert helped[-1] == "True" and "experiment" in helped[1] and "probe" in helped[1]
    assert any("--preset" in line for line in run("experiment", "--help"))
