"""How a setting reads in words, and where ours differs from a published one.

One home for "3 epochs (seed: 5)": the report's per-study setting line (ours
against the seed's stated setting, per scale) and the references table (ours
against a published number's setup, which decides whether it is scored) both
say it this way.
"""

from __future__ import annotations

from collections.abc import Iterable

from bnlab.data.catalog import display_name

# How a parameter's value is said; the others read "<param> <value>".
_PHRASES = {
    "dataset": lambda v: display_name(v),
    "epochs": lambda v: f"{v} epoch{'' if v == '1' else 's'}",
    "train_subset": lambda v: "every training image" if v in ("0", "na") else f"{int(v):,} training images",
    "model": lambda v: f"model {v}",
    "widths": lambda v: f"widths [{v.replace('x', ', ')}]",
    "lr_period": lambda v: f"a half cycle of {v} epoch{'' if v == '1' else 's'}",
}


def phrase(param: str, value: str) -> str:
    """A parameter's canonical value in words: 'MNIST', '3 epochs', '20,000 training images'."""
    say = _PHRASES.get(param)
    return say(value) if say else f"{param} {value}"


def differences(ours: dict[str, Iterable[str]], theirs: dict[str, str], who: str) -> list[str]:
    """Where our values (per parameter, those of every run concerned) differ from `theirs`:
    ['Fashion-MNIST (seed: MNIST)', '3 epochs (seed: 5 epochs)']; a parameter with several values of
    ours lists them all ('4 epochs and 8 epochs (seed: ...)')."""
    out = []
    for param, wanted in theirs.items():
        values = sorted(set(ours.get(param, ())), key=_order)
        if not values or values == [wanted]:
            continue
        out.append(f"{' and '.join(phrase(param, v) for v in values)} ({who}: {phrase(param, wanted)})")
    return out


def _order(value: str):
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)
