"""The error a user can fix in the config, and how its messages name a field.

Base layer, with no bnlab import: the plan (bnlab.config) and the features that
check their own config entries (bnlab.search, bnlab.lr_picks, bnlab.claims)
raise the same ConfigError, so a caller catches one class.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A config problem a user can fix; the message names the field."""


def path_text(parts) -> str:
    """A field's path as a user writes it: ['studies', 's', 'grid', 'lr', 1] -> 'studies.s.grid.lr[1]'."""
    text = ""
    for p in parts:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text or "(top level)"
