"""`tiger train` input checks: typed options, and every input mistake found before a model loads,
reported as one line with the fix (a traceback only with --debug). No model is loaded here: each
case fails (or is parsed) before that; the real runs with these options are in test_train.py."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from flows.cli import main
from train.checks import TrainInputError, check_base_model, model_tag
from flows.train_cli import finetune_params, register


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tiger")
    register(p.add_subparsers(dest="cmd"))
    return p


def test_every_option_is_typed_none_defaults_by_their_annotation():
    a = parser().parse_args(["train", "--mixture", "m", "--threads", "2", "--save-total-limit", "1",
                             "--learning-rate", "1e-3", "--max-steps", "0"])
    assert (a.threads, a.save_total_limit, a.learning_rate, a.max_steps) == (2, 1, 1e-3, 0)
    assert type(a.threads) is int and type(a.save_total_limit) is int
    for name, default in finetune_params().items():
        if default is not None and name in vars(a):
            assert isinstance(vars(a)[name], type(default) if not isinstance(default, tuple) else (tuple, list)), name
    with pytest.raises(SystemExit):  # a non-number is refused by argparse, not by torch at step 1
        parser().parse_args(["train", "--mixture", "m", "--threads", "two"])


def test_max_steps_zero_is_documented(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["train", "--help"])
    assert "0: train num_epochs passes over the mixture" in " ".join(capsys.readouterr().out.split())


@pytest.fixture
def fake_model(tmp_path) -> Path:
    """A folder that passes the base-model check (it holds config.json); never loaded here."""
    d = tmp_path / "models" / "my-bloom"
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    return d


def mixture(tmp_path: Path, n: int) -> Path:
    p = tmp_path / f"mix{n}.json"
    p.write_text(json.dumps([{"instruction": f"问{i}", "input": "", "output": f"答{i}"} for i in range(n)],
                            ensure_ascii=False), encoding="utf-8")
    return p


def tiger_train(*args: str) -> str:
    """The one-line message `tiger train` exits with."""
    with pytest.raises(SystemExit) as e:
        main(["train", "--eval-per-type", "0", *args])
    assert isinstance(e.value.code, str), e.value.code
    assert "\n" not in e.value.code and "Traceback" not in e.value.code
    return e.value.code


def test_a_zero_row_mixture_is_refused_before_any_model_loads(tmp_path, fake_model):
    msg = tiger_train("--mixture", str(mixture(tmp_path, 0)), "--base-model", str(fake_model),
                      "--output-dir", str(tmp_path / "out"))
    assert "has no rows" in msg and msg.startswith("tiger train: ")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("base", ["./models/no-such-model", "/nonexistent/bloom", "data/processed/models/tyni"])
def test_a_missing_local_base_model_reads_as_a_missing_folder(tmp_path, base):
    msg = tiger_train("--mixture", str(mixture(tmp_path, 3)), "--base-model", base,
                      "--output-dir", str(tmp_path / "out"))
    assert f"base model {base}: no such folder" in msg and "repo id" not in msg
    assert not (tmp_path / "out").exists()  # nothing written: the corrected command starts clean


def test_an_uncached_hub_model_offline_says_how_to_get_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TrainInputError, match=r"not in the Hugging Face cache .*\(huggingface-cli download"):
        check_base_model("nobody-tiger-test/no-such-model")


def test_a_folder_without_config_is_not_a_model(tmp_path):
    with pytest.raises(TrainInputError, match="no config.json"):
        check_base_model(str(tmp_path))


def test_a_folder_holding_another_run_is_refused_before_loading(tmp_path, fake_model):
    out = tmp_path / "out"
    (out / "checkpoint-2").mkdir(parents=True)
    (out / "run_config.json").write_text(json.dumps({"lora_r": 4, "base_model": str(fake_model.resolve())}))
    msg = tiger_train("--mixture", str(mixture(tmp_path, 3)), "--base-model", str(fake_model),
                      "--output-dir", str(out))
    assert "holds a run with other settings (lora_r)" in msg and "--output-dir" in msg


def test_debug_shows_the_traceback(tmp_path, fake_model):
    with pytest.raises(TrainInputError, match="has no rows"):
        main(["train", "--eval-per-type", "0", "--mixture", str(mixture(tmp_path, 0)), "--base-model",
              str(fake_model), "--debug"])


def test_output_folder_names_the_base_model(tmp_path):
    assert model_tag("tiny") == "tiny"
    assert model_tag("bigscience/bloomz-560m") == "bloomz-560m"
    assert model_tag(str(tmp_path / "models" / "tiny-0a1b") + "/") == "tiny-0a1b"
