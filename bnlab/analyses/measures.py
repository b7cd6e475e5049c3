"""The measures of a run, each with one name and one definition: what the report calls a number is what it is.

A run's metrics.json holds two validation accuracies that differ in what they evaluate: the best point of
the validation curve, every point on the same fixed, class-stratified subset of the validation split
(eval_size images), and the whole validation split once at the end. The report named both "validation
accuracy" and so disagreed with itself (87.9% in one sentence, 87.4% in the next). Every sentence, table
header and caption names a measure by `name(column)` and a study's facts table (the summary's facts.csv)
gives each with its definition and its value per run; the report's appendix lists the definitions once.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Measure:
    column: str  # the run table's column (runs.csv, from metrics.json)
    name: str  # the one name the report gives it
    short: str  # a table header (the caption or the appendix spells it out)
    split: str
    images: str
    point: str  # which point of training

    @property
    def definition(self) -> str:
        return f"{self.split}; {self.images}; {self.point}"


CURVE_IMAGES = "the fixed class-stratified subset of eval_size images that every curve point evaluates"
MEASURES: dict[str, Measure] = {m.column: m for m in (
    Measure("best_val_acc", "best validation accuracy (curve subset)", "best val acc (subset) %", "validation split",
            CURVE_IMAGES, "the highest point of the validation curve"),
    Measure("final_val_acc", "final validation accuracy (whole split)", "val acc %", "validation split",
            "every image", "the end of training"),
    Measure("final_test_acc", "test accuracy", "test acc %", "test split", "every image", "the end of training"),
    Measure("final_train_acc", "train accuracy (last batches)", "train acc %", "training split",
            "the training batches since the last evaluation, in training mode (dropout on)", "the end of training"),
    Measure("final_train_loss", "train loss (last batches)", "train loss", "training split",
            "the training batches since the last evaluation, in training mode (dropout on)", "the end of training"),
    Measure("final_val_loss", "validation loss", "val loss", "validation split", "every image", "the end of training"),
    Measure("final_test_loss", "test loss", "test loss", "test split", "every image", "the end of training"),
    Measure("train_seconds", "training seconds (shared machine)", "train s", "training", "every optimizer step, "
            "evaluation excluded, timed while other jobs shared the machine", "the whole run"),
)}


def name(column: str) -> str:
    """The report's name of the measure in run-table column `column`."""
    return MEASURES[column].name


def facts_table(runs: pd.DataFrame) -> pd.DataFrame:
    """A study's facts: one row per (measure, run), the measure's name and definition beside the run's cell
    (label), seed, status and value; runs without a value for a measure (diverged, older folders) keep an
    empty value rather than a missing row."""
    frames = []
    for measure in MEASURES.values():
        values = (pd.to_numeric(runs[measure.column], errors="coerce") if measure.column in runs
                  else pd.Series(float("nan"), index=runs.index))
        frames.append(pd.DataFrame({"measure": measure.column, "name": measure.name, "definition": measure.definition,
                                    "cell": runs["label"], "seed": runs["seed"].astype(int), "status": runs["status"],
                                    "value": values}))
    return pd.concat(frames, ignore_index=True)[FACT_COLUMNS]


FACT_COLUMNS = ["measure", "name", "definition", "cell", "seed", "status", "value"]
