"""A study's claims (`expect:` entries), checked when the config is read: the cells each names and the
fields its test needs. bnlab/analyses/expectations.py judges them against the runs.

Plan layer: an error here is a config error, raised before any job is planned.
"""

from __future__ import annotations

from typing import Any

from bnlab.cells import check_cell
from bnlab.errors import ConfigError, path_text

# Tests of an expectation that compare two cells (a and b), and those about a set of cells (`cells`);
# together, the schema's enum of `test` (tests/test_expectations.py checks).
PAIR_TESTS = ("higher", "lower", "similar", "faster")
CELL_TESTS = ("chance", "above_chance", "diverges", "no_divergence", "below", "above")
# Numbers of an `expect:` entry (YAML reads 1e-6 as text, as with run parameters).
EXPECT_NUMBERS = ("value", "margin", "tolerance")


def check_expectation(study: Any, entry: dict, where: list) -> dict:
    """An `expect:` entry of `study` (a StudyPlan) with its selectors checked and canonical; the fields its
    test needs present."""
    test, out = entry["test"], dict(entry)
    if test in PAIR_TESTS:
        for side in ("a", "b"):
            if side not in entry:
                raise ConfigError(f"config error at '{path_text(where)}': test '{test}' compares two cells; "
                                  f"give '{side}' (and {'b' if side == 'a' else 'a'}), run parameters of one cell each")
            # a run metric pairs one cell's runs by seed; an analysis's measure may be over several cells
            # (landscape's loss band spans a bn setting's lrs), so it only needs the selector to match
            out[side] = check_cell(study, entry[side], where + [side], one="." not in entry.get("metric", ""))
        if entry.get("cells"):
            raise ConfigError(f"config error at '{path_text(where + ['cells'])}': test '{test}' takes a and b, "
                              "not cells")
    else:
        for side in ("a", "b"):
            if side in entry:
                raise ConfigError(f"config error at '{path_text(where + [side])}': test '{test}' is about "
                                  f"`cells`, not a pair; pair tests: {', '.join(PAIR_TESTS)}")
        out["cells"] = [check_cell(study, c, where + ["cells", i], one=False)
                        for i, c in enumerate(entry.get("cells", []))]
    if test in ("below", "above") and "value" not in entry:
        raise ConfigError(f"config error at '{path_text(where)}': test '{test}' needs a 'value' to compare with")
    return out
