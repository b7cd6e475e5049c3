"""A study's Discussion: the seed's questions answered in words, from what its analyses computed.

The seeds' own reports end each problem with a discussion: are the results what
the literature expects, and where not, why; which of the compared settings is
better, and by how much; how the numbers stand against the published ones. This
module writes those paragraphs from the verdicts and numbers already in the
study's fragments (the answers an analysis gives to the study's question, the expectations' items, the
comparisons' per-metric results, the summary's reference verdicts). It computes nothing of its own: every number
it prints is one a table of the section prints too, in the same words
(comparisons.metric_phrase), so the Discussion cannot disagree with them.
"""

from __future__ import annotations

from bnlab.analyses.comparisons import (AGREE, DISAGREE, HIGHER, LOWER, NO_PAIR, ONE_SEED, STILL_TRAINING, UNCLEAR,
                                        metric_phrase)
from bnlab.analyses.evidence import MIN_SEEDS

TEST_ACC = "final_test_acc"  # what "better" means in a sentence: the final test accuracy


def _lower_first(text: str) -> str:
    """'Dropout narrows ...' -> 'dropout narrows ...'; 'BN does ...' keeps its capitals."""
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        return text[0].lower() + text[1:]
    return text


def expectations_paragraph(expectations: dict | None, setting_gaps: list[str]) -> str | None:
    """Are the results as expected? One sentence per claim, by its verdict."""
    items = (expectations or {}).get("items") or []
    if not items:
        return None
    counts = {v: sum(i["verdict"] == v for i in items) for v in ("confirmed", "contradicted", "inconclusive")}
    parts = [f"Are the results as expected? Of the {len(items)} expectation{'s' if len(items) != 1 else ''} from "
             f"the literature and the seed checked on these runs, {counts['confirmed']} "
             f"hold{'s' if counts['confirmed'] == 1 else ''}, {counts['contradicted']} "
             f"{'does' if counts['contradicted'] == 1 else 'do'} not and {counts['inconclusive']} "
             f"{'is' if counts['inconclusive'] == 1 else 'are'} undecided."]
    for item in items:
        claim, source = item["claim"].rstrip("."), item["source"]
        if item["verdict"] == "confirmed":
            parts.append(f"As expected ({source}), {_lower_first(claim)} ({item['observed']}).")
        elif item["verdict"] == "contradicted":
            text = f"Not as expected ({source}): “{claim}” does not hold here ({item['observed']})."
            if setting_gaps:  # the likely reason the data can name: the setting is not the paper's
                text += (" These runs differ from the seed's setting in " + "; ".join(setting_gaps)
                         + ", which may be why.")
            parts.append(text)
        else:
            parts.append(f"Undecided: “{claim}” ({item['reason']}).")
    return " ".join(parts)


def _sentence(text: str) -> str:
    """A sentence that starts with a cell's name starts with a capital ('input BN ...' -> 'Input BN ...')."""
    return text[:1].upper() + text[1:]


def comparison_sentence(c: dict) -> str:
    """Which of a compared pair is better on test accuracy, and by how much, or why that is not called."""
    return _sentence(_comparison_text(c))


def _comparison_text(c: dict) -> str:
    m = c["metrics"][TEST_ACC]
    a, b = c["a_label"], c["b_label"]
    numbers = metric_phrase(TEST_ACC, "test accuracy", m)
    direction = m["direction"]
    if direction == HIGHER:
        return f"{a} is better than {b}: {numbers}."
    if direction == LOWER:
        return f"{b} is better than {a}: {numbers}."
    if direction == UNCLEAR:
        return f"{a} and {b} are not told apart: {numbers}."
    if direction == STILL_TRAINING:
        return f"{a} against {b} is not called while runs are still training: {numbers}."
    if direction in (ONE_SEED, AGREE, DISAGREE):
        return (f"{a} against {b} is not called from {m['seeds']} seed{'s' if m['seeds'] != 1 else ''} "
                f"(at least {MIN_SEEDS} paired seeds decide): {numbers}.")
    if direction == NO_PAIR:
        return f"{a} against {b}: no seed in which both finished."
    return f"{a} against {b}: {numbers}."


def comparisons_paragraph(comparisons: list[dict] | None) -> str | None:
    """Which of the compared settings is better, and by how much?"""
    usable = [c for c in comparisons or [] if TEST_ACC in c.get("metrics", {})]
    if not usable:
        return None
    return "Which setting is better, and by how much? " + " ".join(comparison_sentence(c) for c in usable)


def published_paragraph(verdicts: list[dict] | None) -> str | None:
    """How our numbers stand against the published ones that could be compared."""
    verdicts = verdicts or []
    scored = [v for v in verdicts if v["verdict"] in ("inside", "outside")]
    others = len(verdicts) - len(scored)
    if not scored:
        if not verdicts:
            return None
        return (f"None of the {len(verdicts)} published number{'s' if len(verdicts) != 1 else ''} of this study "
                "could be compared with these runs (the table of published numbers says why).")
    reproduced = sum(v["verdict"] == "inside" for v in scored)
    parts = [f"Against the published numbers: {reproduced} of the {len(scored)} that could be scored "
             f"{'is' if reproduced == 1 else 'are'} reproduced."]
    for v in scored:
        parts.append(f"{v['what']} ({v['source'].split(',')[0]}, published {v['published']}): {v['reason']}.")
    # what may explain the misses, once each (several numbers of one table share theirs)
    caveats = list(dict.fromkeys(v["caveat"] for v in scored if v["verdict"] == "outside" and v.get("caveat")))
    parts += [f"What differs from the published setup (it may explain the misses): "
              f"{_lower_first(caveat.rstrip('.'))}." for caveat in caveats]
    if others:
        parts.append(f"{others} more could not be compared (see the table of published numbers).")
    return " ".join(parts)


def discussion(stats: dict, setting_gaps: list[str]) -> list[str]:
    """The Discussion's paragraphs (none when the study has nothing to discuss: no answers, no claims, no
    pairs, no published numbers). An analysis that answers the study's own question in words (stats
    "answers": the LR range test, the architecture accounting, a search stage) leads it."""
    paragraphs = [" ".join(stats.get("answers") or []) or None,
                  expectations_paragraph(stats.get("expectations"), setting_gaps),
                  comparisons_paragraph(stats.get("comparisons")),
                  published_paragraph(stats.get("references"))]
    return [p for p in paragraphs if p]
