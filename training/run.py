"""The run folder (runs/NAME/) as one type: the only code that knows its file names.

Training writes it, evaluation and export read it; each goes through :class:`RunDir`, so a file
is renamed or re-shaped in one place. Tables are pandas DataFrames, JSON files are dicts.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from edge.errors import UsageError
from edge.labels import CLASSES
from training.config import ConfigError, TrainConfig
from training.config import load as load_config
from training.split import read_split, write_split

# What a finished training leaves; evaluation and export need all of them.
REQUIRED = ("model.keras", "config.json", "split.csv", "run.json")


class RunError(UsageError):
    """The run folder is missing or unfinished; the message says what is absent."""


class RunDir:
    """runs/NAME/: config, labels, split, history, checkpoint, metrics, predictions, report, bundle."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.model = self.path / "model.keras"
        self.history_csv = self.path / "history.csv"
        self.backup = self.path / "backup"
        self.bundle = self.path / "bundle"
        self.report = self.path / "report.md"
        self.confusion_png = self.path / "confusion_matrix.png"
        self.curves_png = self.path / "training_curves.png"
        self.reliability_png = self.path / "reliability.png"
        self._config = self.path / "config.json"
        self._labels = self.path / "labels.json"
        self._info = self.path / "run.json"
        self._split = self.path / "split.csv"
        self._metrics = self.path / "metrics.json"
        self._predictions = self.path / "test_predictions.csv"
        self._excluded = self.path / "excluded_images.csv"
        self._honesty = self.path / "honesty.json"
        self._honesty_arrays = self.path / "honesty.npz"
        self._subgroups = self.path / "subgroups.csv"

    def __str__(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    # --- starting and checking ------------------------------------------------------------------

    def start(self, config: TrainConfig, data_dir: Path, cache_dir: Path | None, *, restart: bool = False,
              facts: dict[str, Any] | None = None) -> None:
        """Create the folder, or check that it holds a run of this same config; record what it uses.

        `restart` first clears a previous run (clear()). `facts` go into run.json too: the
        weights file and its sha256, `split_may_leak`, the workers.

        Raises:
            ConfigError: the folder holds a run with another config, and no restart was asked.
        """
        if restart:
            self.clear()
        self.path.mkdir(parents=True, exist_ok=True)
        self.check_config(config)
        self._write_text(self._config, config.to_json() + "\n")
        self._write_json(self._labels, [{"code": c, "name": n} for c, n in CLASSES])
        self._write_json(self._info, {"data_dir": str(Path(data_dir).resolve()),
                                      "cache_dir": str(Path(cache_dir).resolve()) if cache_dir else None,
                                      **(facts or {})})

    def check_config(self, config: TrainConfig) -> None:
        """Raises ConfigError when the folder holds a run made with another config (naming the keys)."""
        if not self._config.is_file():
            return
        saved, wanted = json.loads(self._config.read_text()), json.loads(config.to_json())
        changed = [f"{k} {saved.get(k)!r} -> {wanted.get(k)!r}" for k in wanted if saved.get(k) != wanted.get(k)]
        if changed:
            raise ConfigError(f"{self.path} holds a run with another config ({'; '.join(changed)}); pass "
                              "--restart to clear its training state and start over, or choose a new --out")

    def clear(self) -> list[Path]:
        """Delete every file and folder this class names (training state, results, bundle); keep others."""
        removed = [p for p in vars(self).values() if isinstance(p, Path) and p.parent == self.path and p.exists()]
        for path in removed:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        return removed

    def has_training_state(self) -> bool:
        """True when an interrupted or finished training left epochs or checkpoints here."""
        return self.history_csv.is_file() or self.backup.exists() or self.model.is_file()

    def copy_training_state(self, to: RunDir) -> None:
        """Copy what resuming needs (split, history, resume checkpoints) into another folder.

        A non-chief worker of a multi-worker run trains in a temporary folder seeded this way, so
        every worker resumes from the same epoch while only the chief writes here.
        """
        to.path.mkdir(parents=True, exist_ok=True)
        for name in (self._split, self.history_csv):
            if name.is_file():
                shutil.copy2(name, to.path / name.name)
        if self.backup.is_dir():
            shutil.copytree(self.backup, to.backup, dirs_exist_ok=True)

    def check_finished(self) -> None:
        """Raises RunError when the folder is not a finished training run."""
        if not self.path.is_dir():
            raise RunError(f"run folder {self.path} does not exist")
        missing = [f for f in REQUIRED if not (self.path / f).is_file()]
        if missing:
            raise RunError(f"{self.path} is not a finished run: {', '.join(missing)} missing "
                           f"(train it with python -m training --out {self.path})")

    @property
    def training_finished(self) -> bool:
        """True when a previous training ended (metrics written) and left no epoch to resume."""
        return self._metrics.is_file() and not self.backup.exists()

    # --- what the run was made from ----------------------------------------------------------

    def config(self) -> TrainConfig:
        return load_config(self._config)

    def label_codes(self) -> list[str]:
        """The class codes in output order as training saved them (older runs: the current ones)."""
        if not self._labels.is_file():
            return [c for c, _ in CLASSES]
        return [entry["code"] for entry in json.loads(self._labels.read_text())]

    def data_dir(self, override: Path | None = None) -> Path:
        return Path(override) if override else Path(self._read_json(self._info)["data_dir"])

    def cache_dir(self) -> Path | None:
        cache = self._read_json(self._info).get("cache_dir")
        return Path(cache) if cache else None

    def split_may_leak(self) -> bool:
        """True when the run was trained on an image-level split (lesion ids unknown, so one
        lesion's photographs may sit in both training and test): its figures may be inflated.
        Set by `python -m training --allow-image-level-split`; a report should say so first."""
        return bool(self._info.is_file() and self._read_json(self._info).get("split_may_leak"))

    def weights(self) -> dict[str, Any] | None:
        """The weights the base started from: source, file and sha256 (None for older runs)."""
        return self._read_json(self._info).get("weights") if self._info.is_file() else None

    # --- tables and results --------------------------------------------------------------------

    def split(self) -> pd.DataFrame | None:
        return read_split(self._split) if self._split.is_file() else None

    @property
    def split_csv(self) -> Path:
        return self._split

    def write_split(self, table: pd.DataFrame) -> None:
        write_split(self._split, table)

    def history(self) -> pd.DataFrame:
        """One row per finished epoch (Keras CSVLogger); empty before the first."""
        return pd.read_csv(self.history_csv) if self.history_csv.is_file() else pd.DataFrame()

    def metrics(self) -> dict[str, Any]:
        return self._read_json(self._metrics) if self._metrics.is_file() else {}

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        self._write_json(self._metrics, metrics)

    def predictions(self) -> pd.DataFrame:
        return pd.read_csv(self._predictions, dtype={"image_id": str, "lesion_id": str})

    def write_predictions(self, table: pd.DataFrame) -> None:
        table.to_csv(self._predictions, index=False, float_format="%.6f")

    def write_excluded(self, table: pd.DataFrame) -> Path:
        """List the images excluded as unreadable, so a user can find and replace them."""
        table.to_csv(self._excluded, index=False)
        return self._excluded

    def write_honesty(self, params: dict[str, Any], arrays: dict[str, Any]) -> None:
        """What the export puts in the bundle for honest answers: thresholds and statistics."""
        import numpy as np

        self._write_json(self._honesty, params)
        np.savez(self._honesty_arrays, **arrays)

    def honesty(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(params, arrays) written by the evaluation.

        Raises:
            RunError: the run was evaluated by a version without honest answers.
        """
        import numpy as np

        if not (self._honesty.is_file() and self._honesty_arrays.is_file()):
            raise RunError(f"{self.path} has no honesty.json / honesty.npz: re-run "
                           f"python -m training.evaluate {self.path}")
        with np.load(self._honesty_arrays) as stored:
            return self._read_json(self._honesty), {k: stored[k] for k in stored.files}

    def write_subgroups(self, table: pd.DataFrame) -> None:
        table.to_csv(self._subgroups, index=False, float_format="%.4f")

    def write_report(self, text: str) -> None:
        self._write_text(self.report, text)

    def write_report_section(self, title: str, lines: list[str]) -> None:
        """Put a '## TITLE' section at the end of report.md, replacing an earlier one of that title."""
        text = self.report.read_text() if self.report.is_file() else ""
        heading = f"## {title}\n"
        if heading in text:
            start = text.index(heading)
            following = text.find("\n## ", start + len(heading))
            text = text[:start] + (text[following + 1:] if following >= 0 else "")
        self.write_report(text.rstrip("\n") + "\n\n" + heading + "\n" + "\n".join(lines) + "\n")

    def load_model(self):
        """The best checkpoint as a Keras model (imports Keras)."""
        import keras

        return keras.models.load_model(self.model, compile=False)

    @staticmethod
    def _read_json(path: Path) -> Any:
        return json.loads(path.read_text())

    @staticmethod
    def _write_text(path: Path, text: str) -> None:
        """Write PATH whole or not at all: the workers of one run read what the chief writes (a
        plain write_text let a worker read config.json empty, between truncation and write)."""
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_text(text)
        os.replace(partial, path)

    @classmethod
    def _write_json(cls, path: Path, value: Any) -> None:
        cls._write_text(path, json.dumps(value, indent=2) + "\n")
