"""Checks of a training run's inputs, made before any model loads or any tiny base is built.

A mistake found after minutes of building or training costs those minutes; one found by a
transformers internals error costs the user an hour of reading. Each check raises
:class:`TrainInputError` with one line that names the problem and the fix.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

# A Hugging Face model id: "name" or "owner/name" (letters, digits, "-", "_", ".").
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_TRUE = {"1", "true", "yes", "on"}


class TrainInputError(ValueError):
    """A training input that cannot work; the message says what to do instead."""


def hub_offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_base_model(name: str) -> None:
    """``tiny``, a local model folder (with ``config.json``), or a Hugging Face model id that can be
    loaded: offline, only one already in the local cache."""
    if name == "tiny":
        return
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise TrainInputError(f"base model {name}: the folder holds no config.json, so it is not a saved "
                                  f"transformers model; pass the folder that holds config.json")
        return
    if path.exists():
        raise TrainInputError(f"base model {name}: is a file; pass the model's folder (the one with config.json)")
    if name.startswith((".", "/", "~")) or not _HUB_ID.match(name):
        raise TrainInputError(f"base model {name}: no such folder; pass an existing local model folder, "
                              f"or a Hugging Face model id such as bigscience/bloomz-560m")
    if hub_offline():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(name, "config.json"), str):
            raise TrainInputError(f"base model {name}: no such local folder, and not in the Hugging Face cache "
                                  f"while offline (HF_HUB_OFFLINE); download it first (huggingface-cli download "
                                  f"{name}) or pass a local model folder")


def check_rows(records: list[Any], what: str) -> None:
    if not records:
        raise TrainInputError(f"{what} has no rows: nothing to train on; pick a mixture with rows "
                              f"(tiger ledger RUN_DIR shows what each stage kept)")


def model_tag(base_model: str) -> str:
    """A short, file-name-safe name of a base model for output folder names (``tiny``,
    ``bloomz-560m``, the local folder's name)."""
    tail = Path(base_model.rstrip("/\\")).name or "model"
    return re.sub(r"[^\w.-]+", "-", tail).strip("-.") or "model"
