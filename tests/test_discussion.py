"""A study's Discussion (bnlab/report/discussion.py): the seed's questions answered from the verdicts."""

from bnlab.analyses.comparisons import metric_result
from bnlab.analyses.evidence import pair
from bnlab.report.discussion import comparisons_paragraph, discussion, expectations_paragraph, published_paragraph


def compared(a: dict, b: dict, name="pair", a_label="BN + dropout", b_label="dropout", still_training=()):
    return {"name": name, "a_label": a_label, "b_label": b_label, "still_training": list(still_training),
            "metrics": {"final_test_acc": metric_result(pair(a, b))}}


def test_the_better_setting_is_named_with_its_margin_and_flips_with_the_data():
    higher = compared({0: 0.91, 1: 0.92, 2: 0.93}, {0: 0.88, 1: 0.885, 2: 0.89})
    text = comparisons_paragraph([higher])
    assert text.startswith("Which setting is better, and by how much? BN + dropout is better than dropout: "
                           "test accuracy 92.0% vs 88.5%, +3.5 points (3 seeds, 95% interval")
    lower = compared({0: 0.88, 1: 0.885, 2: 0.89}, {0: 0.91, 1: 0.92, 2: 0.93})
    assert "Dropout is better than BN + dropout: test accuracy 88.5% vs 92.0%, -3.5 points" in \
        comparisons_paragraph([lower])
    unclear = compared({0: 0.90, 1: 0.92, 2: 0.89}, {0: 0.91, 1: 0.90, 2: 0.90})
    assert "BN + dropout and dropout are not told apart" in comparisons_paragraph([unclear])
    # the same effect from two seeds is not called
    two = compared({0: 0.91, 1: 0.92}, {0: 0.88, 1: 0.885})
    assert "not called from 2 seeds (at least 3 paired seeds decide)" in comparisons_paragraph([two])


def test_a_cell_name_starts_its_sentence_with_a_capital():
    c = compared({0: 0.9, 1: 0.9, 2: 0.91}, {0: 0.8, 1: 0.8, 2: 0.81}, a_label="input BN", b_label="BN")
    assert "? Input BN is better than BN:" in comparisons_paragraph([c])


def test_each_claim_is_answered_by_its_verdict():
    items = [
        {"claim": "Dropout narrows the gap", "source": "Srivastava et al. 2014", "verdict": "confirmed",
         "observed": "a = 1%; b = 3%", "reason": ""},
        {"claim": "BN lowers ICS", "source": "Ioffe & Szegedy 2015", "verdict": "contradicted",
         "observed": "a = 0.08; b = 0.11", "reason": ""},
        {"claim": "BN trains faster", "source": "Ioffe & Szegedy 2015", "verdict": "inconclusive",
         "observed": "", "reason": "2 seeds: they agree in sign"},
    ]
    text = expectations_paragraph({"items": items}, ["Fashion-MNIST (the seed: MNIST)"])
    assert "Of the 3 expectations from the literature and the seed checked on these runs, 1 holds, 1 does not " \
           "and 1 is undecided." in text
    assert "As expected (Srivastava et al. 2014), dropout narrows the gap (a = 1%; b = 3%)." in text
    assert ("Not as expected (Ioffe & Szegedy 2015): “BN lowers ICS” does not hold here (a = 0.08; b = 0.11). "
            "These runs differ from the seed's setting in Fashion-MNIST (the seed: MNIST), which may be why.") in text
    assert "Undecided: “BN trains faster” (2 seeds: they agree in sign)." in text
    # at the seed's own setting a contradiction is not explained away
    assert "may be why" not in expectations_paragraph({"items": items}, [])
    assert expectations_paragraph({"items": []}, []) is None


def test_published_numbers_reproduced_and_missed_with_what_differs_said_once():
    caveat = "The seed states no batch size."
    verdicts = [
        {"what": "MLP, lr 0.01", "source": "Seed 002, table 1", "published": "95.7%", "verdict": "outside",
         "reason": "ours 93.4% is 1.3 points below the band 94.7% to 96.7%", "caveat": caveat},
        {"what": "MLP + BN, lr 0.01", "source": "Seed 002, table 1", "published": "96.4%", "verdict": "outside",
         "reason": "ours 97.2% is 0.3 points above the band 95.4% to 96.9%", "caveat": caveat},
        {"what": "LeNet-5", "source": "LeCun et al. 1998", "published": "99.05%", "verdict": "inside",
         "reason": "ours 99.1% is inside the band 98.8% to 99.3%", "caveat": ""},
        {"what": "VGG", "source": "x", "published": "92%", "verdict": "not scored", "reason": "CIFAR-10"},
    ]
    text = published_paragraph(verdicts)
    assert text.startswith("Against the published numbers: 1 of the 3 that could be scored is reproduced.")
    assert "MLP, lr 0.01 (Seed 002, published 95.7%): ours 93.4% is 1.3 points below the band" in text
    assert text.count("the seed states no batch size") == 1
    assert text.endswith("1 more could not be compared (see the table of published numbers).")
    assert published_paragraph([verdicts[3]]).startswith("None of the 1 published number of this study")
    assert published_paragraph([]) is None


def test_a_study_with_nothing_to_discuss_has_no_discussion():
    assert discussion({}, []) == []


def test_an_analysis_that_answers_the_question_leads_the_discussion():
    answers = ["Where does the loss start falling? At lr 0.004."]
    paragraphs = discussion({"answers": answers, "references": [{"verdict": "not scored"}]}, [])
    assert paragraphs[0] == answers[0] and len(paragraphs) == 2


def test_the_lr_range_test_answers_where_the_loss_falls_and_blows_up():
    import pandas as pd

    from bnlab.analyses.lr_range import lr_range_answers

    table = pd.DataFrame([
        {"curve": "grid", "lr_min": 0.0046, "lr_max": 0.02, "lr_at_min": 0.06, "lr_blowup": 10.0, "error": ""},
        {"curve": "sweep", "lr_min": 0.0017, "lr_max": 0.035, "lr_at_min": 0.11, "lr_blowup": float("nan"),
         "error": ""}])
    (text,) = lr_range_answers(table)
    assert "blow up? The grid test's loss starts falling (by a tenth of its drop) at lr 0.0046 and is lowest at 0.06; " \
           "it blows up from lr 10" in text
    assert "the sweep test's loss starts falling (by a tenth of its drop) at lr 0.0017 and is lowest at 0.11; " \
           "it did not blow up within the range" in text
    assert text.endswith("a factor 1.8 apart.")
    # a test that gave no bounds answers nothing
    assert lr_range_answers(table.assign(error="no fall")) == []


def draws(reached, best_score=0.845, n=5000):
    return {("l2", "coarse", "draw"): [
        {"value": 0.04 + i / 1000, "reached": r, "best_final_val_acc": best_score, "best": 0.0421, "val_images": n}
        for i, r in enumerate(reached)]}


def test_a_stage_of_draws_answers_whether_it_found_a_better_value():
    from bnlab.analyses.summary import search_stage_answers

    (within,) = search_stage_answers(draws([0.841, 0.846, 0.843]))
    assert ("The best of the 3 draws, l2 = 0.041, reached 84.6% final validation accuracy (whole split) against "
            "84.5% at the best l2 of 'coarse', 0.0421: +0.1 points, no: within two standard errors") in within
    (better,) = search_stage_answers(draws([0.841, 0.87, 0.843]))
    assert "+2.5 points, yes: beyond two standard errors (±1.4 points on 5,000 images)" in better
    (worse,) = search_stage_answers(draws([0.80, 0.81]))
    assert "no: lower by more than two standard errors" in worse
    (none,) = search_stage_answers(draws([None, None]))
    assert "No run of this stage finished" in none
    # a stage written best-<study> is not a stage of draws
    assert search_stage_answers({("l2", "fine", "best"): [{"value": 1.0}]}) == []


def test_the_architecture_section_answers_its_three_questions():
    from bnlab.analyses.architecture.section import section_data

    answers = section_data([])["answers"]
    assert [a.split("?")[0] for a in answers] == ["Where do parameters and memory sit",
                                                  "What do stacked small convolutions see",
                                                  "How much does dimension reduction save"]
    assert "13x13" in answers[1] and "3.15x fewer multiplies" in answers[2]
