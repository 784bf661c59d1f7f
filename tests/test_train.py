"""Training stage: prompt masking, constraint terms, adapter save/load, LoRA steps, resume, eval isolation.

Everything runs on a tiny base built here (minutes of CPU would be too slow for tests, so its spec
is far smaller than the default) from real mirror rows.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import flows  # noqa: F401  (env defaults)
from curate.io import write_parquet
from curate.records import make_record, records_frame
from curate.tasktype import label_task_type
from train.constraints import Gravity, KLToBase, build_constraint, gravity_term, kl_to_base, lora_matrices
from train.evaluate import (ContaminationError, check_decontaminated, eval_overlap_mask, near_dup_mask, remove_eval_items,
                            repetition_metrics, select_eval_set)
from train.prompt import IGNORE_INDEX, get_template, tokenize_example
from train.tiny import TinySpec, build_tiny

torch.set_num_threads(2)

# Small but trained far enough (loss ~4.6) that its embeddings are no longer near zero: LoRA cannot
# move a near-uniform base, whose frozen embeddings cap how peaked its logits can be.
TEST_SPEC = TinySpec(vocab_size=1200, hidden_size=64, n_layer=2, n_head=2, seq_len=64, pretrain_steps=300,
                     batch_size=8, learning_rate=5e-3, warmup_steps=10)


def mirror_rows(mirror: Path) -> list[dict]:
    """Real rows: translated Alpaca (two translations of the same prompts: near-duplicates), BELLE, code."""
    rows = []

    def add(source, rel, data, limit):
        for i, r in enumerate(data[:limit]):
            if isinstance(r, dict) and isinstance(r.get("instruction"), str) and r.get("output"):
                rows.append(make_record(source, rel, i, r["instruction"], str(r.get("input") or ""), str(r["output"])))

    tca = mirror / "trans_chinese_alpaca" / "alpaca_chinese_part_0.json"
    add("trans_chinese_alpaca", tca.name, json.loads(tca.read_text(encoding="utf-8")), 900)
    hk = mirror / "alpaca_chinese" / "translated" / "alpaca_data-0-3252-中文-已完成.json"
    add("alpaca_chinese", hk.name, json.loads(hk.read_text(encoding="utf-8")), 900)
    belle = [json.loads(line) for line in (mirror / "belle" / "dev1K.json").read_text(encoding="utf-8").splitlines()
             if line.strip()]
    add("belle", "dev1K.json", belle, 400)
    code = mirror / "alpaca_chinese" / "supplementary" / "代码问题.json"
    add("alpaca_chinese", code.name, json.loads(code.read_text(encoding="utf-8")), 200)
    return rows


def make_pool(mirror: Path) -> pd.DataFrame:
    df = records_frame(mirror_rows(mirror))
    df["task_type"] = [label_task_type(a, b, c) for a, b, c in zip(df["instruction"], df["input"], df["output"])]
    df["cluster"] = [int(h, 16) % 6 for h in df["id"]]  # crude, but build_mixture only needs an int label
    return df


@pytest.fixture(scope="session")
def pool_path(mirror, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pool") / "kept.parquet"
    write_parquet(path, make_pool(mirror))
    return path


@pytest.fixture(scope="session")
def tiny_dir(pool_path, tmp_path_factory) -> Path:
    return build_tiny(pool_path, tmp_path_factory.mktemp("models"), TEST_SPEC, log=lambda m: None)


@pytest.fixture(scope="session")
def tokenizer(tiny_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_dir)


def lora_model(tiny_dir, seed=0, r=4):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32)
    return get_peft_model(base, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=["query_key_value"],
                                           task_type="CAUSAL_LM"))


def batch_of(tokenizer, records, cutoff=96):
    from train.evaluate import pad_batch

    feats = [tokenize_example(tokenizer, get_template("alpaca_zh"), r, cutoff) for r in records]
    return pad_batch(feats, tokenizer.pad_token_id)


def write_alpaca(path: Path, df: pd.DataFrame, with_type: bool = False) -> Path:
    cols = ["instruction", "input", "output"] + (["task_type"] if with_type else [])
    path.write_text(json.dumps(df[cols].to_dict("records"), ensure_ascii=False), encoding="utf-8")
    return path


# ---- tiny base ----------------------------------------------------------------------------------


def test_tiny_build_is_cached_and_keeps_chinese_punctuation(pool_path, tiny_dir, tokenizer, tmp_path):
    build = json.loads((tiny_dir / "build.json").read_text())
    assert build["loss_last50"] < build["loss_first50"] or build["loss_every50"][-1] < math.log(build["spec"]["vocab_size"])
    # the same inputs find the same folder without rebuilding
    assert build_tiny(pool_path, tiny_dir.parent, TEST_SPEC) == tiny_dir
    # no NFKC: full-width punctuation survives a round trip
    text = "你好，世界：“引号”（括号）！"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(tiny_dir).model_type == "bloom"


# ---- prompt -------------------------------------------------------------------------------------


def test_prompt_masking_and_truncation(tokenizer, mirror):
    rec = mirror_rows(mirror)[0]
    tmpl = get_template("alpaca_zh")
    masked = tokenize_example(tokenizer, tmpl, rec, cutoff_len=512, train_on_inputs=False)
    full = tokenize_example(tokenizer, tmpl, rec, cutoff_len=512, train_on_inputs=True)
    assert masked["input_ids"] == full["input_ids"]
    assert full["labels"] == full["input_ids"]
    n_prompt = sum(1 for x in masked["labels"] if x == IGNORE_INDEX)
    prompt_text = tokenizer.decode(masked["input_ids"][:n_prompt])
    assert prompt_text.endswith("### 回复：\n") and rec["instruction"] in prompt_text
    resp = masked["labels"][n_prompt:]
    assert resp[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(resp[:-1]) == rec["output"]
    # a long record is cut to cutoff_len, keeps the response marker and leaves the response room
    long = dict(rec, input="很长的输入。" * 200)
    cut = tokenize_example(tokenizer, tmpl, long, cutoff_len=64)
    assert len(cut["input_ids"]) == 64
    k = sum(1 for x in cut["labels"] if x == IGNORE_INDEX)
    assert tokenizer.decode(cut["input_ids"][:k]).endswith("### 回复：\n")
    assert 64 - k >= min(32, len(masked["labels"]) - n_prompt - 1)
    # the English template differs only in wording
    en = tokenize_example(tokenizer, get_template("alpaca"), rec, cutoff_len=512)
    assert "### Response:" in tokenizer.decode(en["input_ids"])


# ---- constraints --------------------------------------------------------------------------------


def test_gravity_equals_formula_on_hand_built_adapter(tiny_dir, tokenizer, mirror):
    model = lora_model(tiny_dir)
    mats = lora_matrices(model)
    assert len(mats) == 2 * TEST_SPEC.n_layer  # one A and one B per layer's query_key_value
    expected = []
    with torch.no_grad():
        for i, m in enumerate(mats):
            value = 0.01 * (i + 1)
            m.fill_(value)
            expected.append(abs(value) * math.sqrt(m.numel()))  # ||c·1||_F = |c|·sqrt(rows·cols)
    assert float(gravity_term(model).detach()) == pytest.approx(float(np.mean(expected)), rel=1e-5)
    batch = batch_of(tokenizer, mirror_rows(mirror)[:4])
    out = model(**batch)
    loss, parts = Gravity(0.7, 0.3)(model, batch, out, out.loss)
    assert float(loss) == pytest.approx(0.7 * float(out.loss) + 0.3 * float(np.mean(expected)), rel=1e-5)
    assert parts["gravity"] == pytest.approx(float(np.mean(expected)), rel=1e-5)
    loss2, _ = build_constraint("gravity", gravity_weights=(1.0, 0.5))(model, batch, out, out.loss)
    assert float(loss2) == pytest.approx(float(out.loss) + 0.5 * float(np.mean(expected)), rel=1e-5)


def test_kl_is_zero_with_zero_adapters_and_positive_otherwise(tiny_dir, tokenizer, mirror):
    model = lora_model(tiny_dir)
    batch = batch_of(tokenizer, mirror_rows(mirror)[10:14])
    out = model(**batch)  # LoRA B starts at zero: the adapted model is the base
    assert abs(float(kl_to_base(model, batch, out.logits))) < 1e-6
    loss, parts = KLToBase(2.0)(model, batch, out, out.loss)
    assert float(loss) == pytest.approx(float(out.loss), abs=1e-5)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    out = model(**batch)
    kl = float(kl_to_base(model, batch, out.logits))
    assert kl > 1e-4
    loss, parts = KLToBase(2.0)(model, batch, out, out.loss)
    assert float(loss) == pytest.approx(float(out.loss) + 2.0 * kl, rel=1e-5)
    with pytest.raises(KeyError):
        build_constraint("l2")


def test_response_logits_give_the_full_forward_loss_kl_and_gradients(tiny_dir, tokenizer, mirror):
    """The head run at the labelled positions only (``response_ce``) is the same loss as
    ``model(**batch).loss``, the same KL to the base and the same LoRA gradients, on real rows."""
    from train.constraints import response_ce

    model = lora_model(tiny_dir)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.3)
    batch = batch_of(tokenizer, mirror_rows(mirror)[20:26])
    lora = [p for n, p in model.named_parameters() if "lora_" in n]
    out = model(**batch)
    full_kl = kl_to_base(model, batch, out.logits)
    g_full = torch.autograd.grad(out.loss + full_kl, lora)
    ce, logits = response_ce(model, batch)
    assert logits.shape == (int((batch["labels"][:, 1:] != -100).sum()), out.logits.shape[-1])
    assert float(ce) == pytest.approx(float(out.loss), rel=1e-5)
    kl = kl_to_base(model, batch, logits)
    assert float(kl) == pytest.approx(float(full_kl), rel=1e-4) and float(kl) > 1e-4
    g_resp = torch.autograd.grad(ce + kl, lora)
    for a, b in zip(g_full, g_resp):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_adapter_delta_norm_is_zero_at_start_and_the_hand_computed_value_after(tiny_dir):
    from train.constraints import adapter_delta_norm

    model = lora_model(tiny_dir)
    assert adapter_delta_norm(model) == 0.0  # B starts at zero: the adapted model is the base
    expected = []
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
                a, b = module.lora_A["default"].weight, module.lora_B["default"].weight
                a.fill_(0.1)
                b.fill_(0.2)
                # every entry of B@A is r·0.02; scaled by alpha/r
                entry = module.scaling["default"] * a.shape[0] * 0.02
                expected.append(entry * math.sqrt(b.shape[0] * a.shape[1]))
    assert expected and adapter_delta_norm(model) == pytest.approx(float(np.mean(expected)), rel=1e-5)


def test_saved_adapter_reproduces_logits(tiny_dir, tokenizer, mirror, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = lora_model(tiny_dir)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.3)
    model.eval()
    batch = batch_of(tokenizer, mirror_rows(mirror)[20:24])
    with torch.no_grad():
        before = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    base = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32)
    reloaded = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    with torch.no_grad():
        after = reloaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)
    with reloaded.disable_adapter(), torch.no_grad():
        base_logits = reloaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert not torch.allclose(base_logits, before, atol=1e-3)  # the adapter did change the output


# ---- fine-tuning --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def train_files(pool_path, tmp_path_factory):
    pool = pd.read_parquet(pool_path)
    eval_df = select_eval_set(pool, per_type=3, seed=0)
    clean, _ = remove_eval_items(pool, eval_df)
    d = tmp_path_factory.mktemp("mix")
    mix = write_alpaca(d / "mix.json", clean.sort_values("id").head(48))
    ev = write_alpaca(d / "eval.json", eval_df, with_type=True)
    return mix, ev


def test_lora_steps_lower_the_training_loss(tiny_dir, tokenizer, train_files, tmp_path):
    from train.evaluate import eval_loss_by_type
    from train.finetune import finetune, load_alpaca_json

    mix, ev = train_files
    records = load_alpaca_json(mix)
    tmpl = get_template("alpaca_zh")
    base = lora_model(tiny_dir)
    before = eval_loss_by_type(base, tokenizer, tmpl, records, cutoff_len=96)["loss_micro"]
    s = finetune(mix, tmp_path / "run", base_model=str(tiny_dir), eval_path=ev, max_steps=24, save_steps=12,
                 micro_batch_size=8, learning_rate=1e-2, warmup_steps=2, cutoff_len=96, gen_max_new_tokens=8,
                 seed=1, log_every=4)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_dir), tmp_path / "run" / "adapter")
    after = eval_loss_by_type(tuned, tokenizer, tmpl, records, cutoff_len=96)["loss_micro"]
    assert after < before - 0.05, (before, after)
    assert s["steps"] == 24 and s["tokens_seen"] > 0
    # eval figures at each checkpoint, per task type, plus generation repetition figures
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [12, 24]
    assert set(lines[-1]["by_type"]) == set(pd.read_json(ev)["task_type"])
    for key in ("eval_loss", "eval_ppl", "rep_rate", "distinct_1", "distinct_2"):
        assert math.isfinite(lines[-1][key])
    assert (tmp_path / "run" / "checkpoint-12" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "run" / "checkpoint-24" / "eval.json").is_file()


def test_eval_items_are_scored_on_the_final_adapter(tiny_dir, tokenizer, train_files, tmp_path):
    """The per-item losses in eval_items.parquet are the final adapter's (reused from the last
    checkpoint's evaluation, not an earlier one's), and the final eval loss is their token mean."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from train.evaluate import item_losses
    from train.finetune import finetune, load_alpaca_json

    mix, ev = train_files
    finetune(mix, tmp_path / "run", base_model=str(tiny_dir), eval_path=ev, eval_generate=True, max_steps=6,
             save_steps=2, micro_batch_size=8, learning_rate=3e-2, warmup_steps=1, cutoff_len=96,
             gen_max_new_tokens=4, seed=2)
    items = pd.read_parquet(tmp_path / "run" / "eval_items.parquet")
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [2, 4, 6]
    assert lines[-1]["eval_loss_micro"] == pytest.approx(items["nll"].sum() / items["tokens"].sum(), rel=1e-12)
    assert lines[0]["eval_loss_micro"] != pytest.approx(lines[-1]["eval_loss_micro"], rel=1e-3)  # the steps differ
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_dir), tmp_path / "run" / "adapter")
    fresh = item_losses(tuned, tokenizer, get_template("alpaca_zh"), load_alpaca_json(ev), cutoff_len=96)
    assert items["tokens"].tolist() == [n for _, n in fresh]
    np.testing.assert_allclose(items["nll"], [x for x, _ in fresh], rtol=1e-4)


def test_interrupted_run_resumes_from_its_checkpoint(tiny_dir, train_files, tmp_path):
    from transformers import TrainerCallback
    from safetensors.torch import load_file

    from train.finetune import finetune

    mix, ev = train_files
    kw = dict(base_model=str(tiny_dir), max_steps=8, save_steps=4, micro_batch_size=4, learning_rate=2e-3,
              warmup_steps=1, cutoff_len=96, gen_max_new_tokens=4, seed=3, constraint="gravity", log_every=2)

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **k):
            if state.global_step == 6:  # after checkpoint-4, before checkpoint-8
                raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        finetune(mix, tmp_path / "cut", callbacks=[Kill()], **kw)
    assert (tmp_path / "cut" / "checkpoint-4").is_dir() and not (tmp_path / "cut" / "checkpoint-8").exists()
    assert not (tmp_path / "cut" / "summary.json").exists()
    resumed = finetune(mix, tmp_path / "cut", **kw)
    assert resumed["resumed_from"].endswith("checkpoint-4") and resumed["steps"] == 8
    straight = finetune(mix, tmp_path / "straight", **kw)
    assert straight["resumed_from"] is None
    a = load_file(tmp_path / "cut" / "adapter" / "adapter_model.safetensors")
    b = load_file(tmp_path / "straight" / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:  # the resumed run ends where the uninterrupted one does
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    # a finished run is not trained again
    again = finetune(mix, tmp_path / "cut", **kw)
    assert again == resumed


def test_bad_mixture_names_file_and_row(tmp_path):
    from train.finetune import load_alpaca_json

    p = tmp_path / "bad.json"
    p.write_text(json.dumps([{"instruction": "好", "output": "是"}, {"instruction": "缺输出"}], ensure_ascii=False))
    with pytest.raises(ValueError, match=r"bad.json: row 1 has no string 'output'"):
        load_alpaca_json(p)


# ---- evaluation ---------------------------------------------------------------------------------


def test_eval_set_is_balanced_and_kept_out_of_every_mixture(pool_path):
    from curate.mix import build_mixture
    from curate.records import content_hash

    pool = pd.read_parquet(pool_path)
    eval_df = select_eval_set(pool, per_type=15, seed=0)
    counts = eval_df["task_type"].value_counts()
    avail = pool[pool["output"].str.strip() != ""]["task_type"].value_counts()
    for t, n in avail.items():
        assert counts[t] == min(15, n)
    clean, removed = remove_eval_items(pool, eval_df)
    # more than the eval items themselves go: the other translation of the same Alpaca prompt, copies
    assert len(removed) > len(eval_df)
    assert set(eval_df["id"]) <= set(removed["id"])
    eval_hashes = {content_hash(r["instruction"], r["input"], r["output"]) for r in eval_df.to_dict("records")}
    for strategy in ("diverse", "random", "narrow", "per_source"):
        for seed in (0, 1):
            mix = build_mixture(clean, {"name": f"{strategy}-400", "strategy": strategy, "size": 400, "seed": seed})
            assert not set(mix["id"]) & set(eval_df["id"])
            assert not {content_hash(r["instruction"], r["input"], r["output"]) for r in mix.to_dict("records")} & eval_hashes
            assert not near_dup_mask([f"{a}\n{b}\n{c}" for a, b, c in eval_df[["instruction", "input", "output"]].to_numpy()],
                                     [f"{a}\n{b}\n{c}" for a, b, c in mix[["instruction", "input", "output"]].to_numpy()]).any()
            check_decontaminated(mix, eval_df)
    # a mixture built from the raw pool does hold eval items, and the check says so
    raw = build_mixture(pool, {"name": "random-1500", "strategy": "random", "size": 1500, "seed": 0})
    if eval_overlap_mask(raw, eval_df).any():
        with pytest.raises(ContaminationError, match="eval items"):
            check_decontaminated(raw, eval_df)


def test_near_duplicate_of_an_eval_item_is_caught(pool_path):
    pool = pd.read_parquet(pool_path)
    eval_df = select_eval_set(pool, per_type=2, seed=1)
    item = eval_df[eval_df["output"].str.len() > 80].iloc[0]
    twin = make_record("planted", "x.json", 0, item["instruction"], item["input"], item["output"][:-2] + "。")
    other = make_record("planted", "x.json", 1, "完全无关的问题：今天星期几？", "", "今天是星期三，天气晴朗。")
    df = records_frame([twin, other])
    assert list(eval_overlap_mask(df, eval_df)) == [True, False]


def test_repetition_metrics_on_hand_made_texts():
    loop = repetition_metrics(["我喜欢我喜欢我喜欢我喜欢我喜欢"])
    fresh = repetition_metrics(["春天来了，花开了。", "天空是蓝色的因为散射。"])
    assert loop["rep_rate"] > 0.6 and fresh["rep_rate"] == 0.0
    assert loop["distinct_1"] == pytest.approx(3 / 15) and loop["distinct_2"] == pytest.approx(3 / 14)
    assert fresh["distinct_1"] < 1.0 and fresh["distinct_2"] == 1.0
    assert repetition_metrics(["hello world hello world"], n=2)["rep_rate"] == pytest.approx(1 / 3)
    assert repetition_metrics([""])["rep_rate"] == 0.0


# ---- command line ---------------------------------------------------------------------------------


def test_cli_commands_have_help(capsys):
    import argparse

    from flows.train_cli import register

    p = argparse.ArgumentParser(prog="tiger")
    register(p.add_subparsers(dest="cmd"))
    for cmd, must in (("train", ["--mixture", "--lora-r", "--lora-alpha", "--lora-dropout", "--target-modules",
                                 "--cutoff-len", "--learning-rate", "--max-steps", "--micro-batch-size",
                                 "--gradient-accumulation-steps", "--train-on-inputs", "--constraint", "--seed",
                                 "--base-model", "--device", "--template", "--kl-coef", "--gravity-weights"]),
                      ("build-tiny", ["--vocab-size", "--hidden-size", "--pretrain-steps", "--pool"]),
                      ("experiment", ["--size", "--constraints", "--seeds", "--strategies", "--tiny-pretrain-steps",
                                      "--base-model", "--device"])):
        with pytest.raises(SystemExit):
            p.parse_args([cmd, "--help"])
        out = capsys.readouterr().out
        for flag in must:
            assert flag in out, (cmd, flag)
    a = p.parse_args(["train", "--mixture", "m.json", "--lora-r", "16", "--no-train-on-inputs", "--target-modules",
                      "query_key_value", "dense"])
    assert a.lora_r == 16 and a.train_on_inputs is False and a.target_modules == ["query_key_value", "dense"]
    assert p.parse_args(["train", "--mixture", "m"]).lora_alpha == 16


def test_cli_train_on_a_run_folder_keeps_eval_items_out(pool_path, tiny_dir, tmp_path, capsys):
    import argparse
    import shutil

    from curate.mix import build_mixture, write_alpaca_json
    from flows.train_cli import register

    run = tmp_path / "run-x"
    (run / "05_diversity").mkdir(parents=True)
    shutil.copy(pool_path, run / "05_diversity" / "kept.parquet")
    pool = pd.read_parquet(pool_path)
    eval_df = select_eval_set(pool, per_type=2, seed=0)
    # a curated mixture that holds some of the eval items (mixtures are built from the whole pool)
    mix = pd.concat([build_mixture(pool, "random-60"), eval_df.head(5)]).drop_duplicates("id")
    write_alpaca_json(mix, run / "mixtures" / "random-60.json")
    p = argparse.ArgumentParser(prog="tiger")
    register(p.add_subparsers(dest="cmd"))
    args = ["train", "--mixture", "random-60", "--run-dir", str(run), "--eval-per-type", "2", "--max-steps", "4",
            "--save-steps", "2", "--micro-batch-size", "4", "--cutoff-len", "96", "--gen-max-new-tokens", "4",
            "--constraint", "kl", "--threads", "2", "--save-total-limit", "1", "--output-dir", str(run / "t")]
    # a mistyped base model fails at once and leaves nothing behind that would refuse the corrected command
    from train.checks import TrainInputError

    a = p.parse_args(args + ["--base-model", str(tiny_dir) + "-typo"])
    with pytest.raises(TrainInputError, match="no such folder"):
        a.func(a)
    assert not (run / "t").exists()
    a = p.parse_args(args + ["--base-model", str(tiny_dir)])
    a.func(a)  # --threads and --save-total-limit arrive as ints (they crashed torch / the Trainer as text)
    out = run / "t"
    assert sorted(c.name for c in out.glob("checkpoint-*")) == ["checkpoint-4"]  # save_total_limit 1
    text = capsys.readouterr().out
    printed = json.loads(text[text.index('{\n  "output_dir"'):])
    assert printed["steps"] == 4 and printed["output_dir"] == str(out)
    trained = pd.DataFrame(json.loads((out / "train.json").read_text())).assign(id="")
    assert len(trained) <= len(mix) - 5
    assert not eval_overlap_mask(trained, eval_df).any()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["constraint"] == "kl" and summary["config"]["lora_r"] == 8
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
