"""Fairness figures computed once (core.fairness) and honestly, in gather, the page and the scorecard.

What is checked against what:

- ``spread``/``describe`` against fairlearn's ``MetricFrame.difference()/ratio()`` (between groups)
  on the rows of the groups large enough to compare, on random tables;
- on a binary data set built for it (a group of 3 rows, a site without positive rows, a region
  whose groups are all but one too small): gather's insights.json, the page's data, the page as
  Chromium draws it, scorecard.json and the PDF's text against pandas and fairlearn on the same
  rows: the rare group is flagged, not compared, and does not make the selection-rate ratio 0
  nor FAIL its target; recall of the site without positives is null and decides nothing; a
  difference with one compared group is UNDEFINED (not 0, not missed);
- gather and the scorecard give the same differences and ratios;
- the scorecard's group intervals against a bootstrap done here with scikit-learn;
- ratio targets on a metric that can be negative refused when the config is read (r2 always,
  mean_prediction when the target has negative values), in one line naming the target.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fairlearn import metrics as flm
from pypdf import PdfReader
from sklearn import metrics as skm
from sklearn.linear_model import LinearRegression
from sklearn.tree import DecisionTreeClassifier

from rai_audit.core import RAIInputError
from rai_audit.core import artifacts as A
from rai_audit.core.fairness import describe, group_flag, percentile_interval, spread
from rai_audit.core.metrics import (
    ALWAYS_SIGNED_METRICS,
    METRIC_SIGNS,
    metric_functions,
    signed_metrics,
    target_can_be_negative,
)
from rai_audit.core.scorecard_config import check_against_bundle, parse_scorecard_config
from rai_audit.steps.scorecard import ScorecardOptions, run_scorecard
from support import build_bundle, page_data, shown_text, write_case

POS = "yes"
FAIRLEARN = {
    "selection_rate": lambda t, p: flm.selection_rate(t, p, pos_label=POS),
    "recall_score": lambda t, p: skm.recall_score(t, p, pos_label=POS, zero_division=np.nan),
    "accuracy_score": skm.accuracy_score,
}


# --- the core functions against fairlearn --------------------------------------------------------


def _fairlearn_on_compared(values: np.ndarray, counts: np.ndarray, size: int) -> tuple[float, float]:
    """fairlearn's between-groups difference and ratio of the compared groups' values (a
    MetricFrame over one row per compared group, whose metric is the row's value)."""
    keep = (counts >= size) & np.isfinite(values)
    if keep.sum() < 2:
        return np.nan, np.nan
    frame = flm.MetricFrame(
        metrics=lambda t, p: float(np.mean(p)),
        y_true=values[keep],
        y_pred=values[keep],
        sensitive_features=np.arange(keep.sum()),
    )
    return float(frame.difference(method="between_groups")), float(frame.ratio(method="between_groups"))


def test_spread_equals_fairlearn_between_groups_on_the_compared_groups():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(300):
        n = int(rng.integers(1, 7))
        values = rng.random(n).round(2)
        values[rng.random(n) < 0.2] = np.nan  # undefined in some groups
        counts = rng.integers(1, 80, n)
        difference, ratio = _fairlearn_on_compared(values, counts, 30)
        for kind, expected in (("difference", difference), ("ratio", ratio)):
            got = describe(values, counts, 30, kind)
            assert (got["value"] is None) == (not np.isfinite(expected)), (values, counts, kind)
            if got["value"] is not None:
                assert got["value"] == pytest.approx(expected, abs=1e-12)
                checked += 1
            assert spread(values, counts >= 30, kind) == pytest.approx(expected, abs=1e-12, nan_ok=True)
    assert checked > 100


def test_undefined_figures_are_undefined_with_the_reason():
    counts = np.array([200, 150, 3])
    # One rare group with selection rate 0: not compared, the ratio is the two large groups'.
    assert describe([0.5, 0.45, 0.0], counts, 30, "ratio")["value"] == pytest.approx(0.9)
    # One group big enough: no difference (fairlearn would say 0.0), with the reason.
    one = describe([0.5, 0.1, 0.0], np.array([200, 10, 3]), 30, "difference")
    assert one == {
        "value": None,
        "reason": "fewer than two groups of at least 30 rows",
        "group_min": 0.5,
        "group_max": 0.5,
        "groups_compared": 1,
    }
    # Two big groups, one without a value (recall with no positives): no difference either.
    assert (
        describe([0.7, np.nan, 0.2], counts, 30, "difference")["reason"]
        == "fewer than two groups of at least 30 rows have a value"
    )
    assert describe([0.7, np.nan, 0.2], counts, 30, "difference")["groups_compared"] == 1
    # Ratios: never of a signed metric, nor of negative values, nor 0 / 0.
    assert (
        describe([0.7, 0.5, 0.2], counts, 30, "ratio", signed=True)["reason"]
        == "no ratio of a metric that can be negative"
    )
    assert describe([0.7, 0.5, 0.2], counts, 30, "difference", signed=True)["value"] == pytest.approx(0.2)
    assert describe([-1.0, 0.5, 0.2], counts, 30, "ratio")["reason"] == "a group's value is negative"
    assert describe([0.0, 0.0, 0.2], counts, 30, "ratio")["reason"] == "the largest group value is 0"
    assert group_flag(3, 30) == "too few rows (3)" and group_flag(30, 30) is None


def test_a_ratio_whose_largest_group_value_counts_fewer_than_5_rows_cannot_be_estimated():
    """A ratio of shares of rows needs the largest group value to count at least 5 rows:
    2 predicted positives in 3,253 rows against none in 2,747 is chance, not a ratio of 0. A
    group with none against one with 150 is a real 0. The difference stays."""
    counts = np.array([3253, 2747])
    few = describe([2 / 3253, 0.0], counts, 30, "ratio", counted=[2, 0], counted_what="predicted positives")
    assert few["value"] is None
    assert (
        few["reason"]
        == "cannot be estimated: the largest group value counts 2 predicted positives (a ratio needs at least 5)"
    )
    assert describe([2 / 3253, 0.0], counts, 30, "difference", counted=[2, 0])["value"] == pytest.approx(2 / 3253)
    one = describe([1 / 3253, 0.0], counts, 30, "ratio", counted=[1, 0], counted_what="predicted positives")
    assert one["reason"].endswith("counts 1 predicted positive (a ratio needs at least 5)")
    assert describe([150 / 500, 0.0], np.array([500, 500]), 30, "ratio", counted=[150, 0])["value"] == 0.0
    # 5 is enough; the count of a group too small to compare, or smaller in value, does not matter.
    assert describe([5 / 300, 1 / 300], np.array([300, 300]), 30, "ratio", counted=[5, 1])["value"] == pytest.approx(
        0.2
    )
    assert describe([0.5, 0.4, 1.0], np.array([8, 10, 3]), 1, "ratio", counted=[4, 4, 3])["value"] is None
    assert describe([0.5, 0.4, 1.0], np.array([10, 10, 3]), 10, "ratio", counted=[5, 4, 3])["value"] == pytest.approx(
        0.8
    )
    # Groups tied for the largest value: enough when one of them counts enough.
    assert describe([0.5, 0.5, 0.1], np.array([40, 8, 40]), 1, "ratio", counted=[20, 4, 4])["value"] == pytest.approx(
        0.2
    )


@pytest.mark.parametrize("n_classes", [2, 3])
def test_counted_rows_are_the_rows_each_share_counts(n_classes):
    """counted_rows from the confusion counts against the rows counted with numpy."""
    from rai_audit.core.metrics import COUNTED_ROWS, confusion_counts, counted_rows

    rng = np.random.default_rng(n_classes)
    y_true, y_pred = rng.integers(0, n_classes, 500), rng.integers(0, n_classes, 500)
    counts = confusion_counts(y_true, y_pred, n_classes)
    positive = 1 if n_classes == 2 else None
    actual, chosen = y_true == 1, y_pred == 1
    by_hand = {"accuracy_score": y_true == y_pred, "error_rate": y_true != y_pred}
    if positive is not None:
        by_hand |= {
            "selection_rate": chosen,
            "recall_score": actual & chosen,
            "precision_score": actual & chosen,
            "false_positive_rate": chosen & ~actual,
            "false_negative_rate": actual & ~chosen,
        }
    for name in [*COUNTED_ROWS, "f1_score", "balanced_accuracy_score", "roc_auc_score"]:
        expected = int(by_hand[name].sum()) if name in by_hand else None
        assert counted_rows(name, counts, positive) == expected, name


def test_spread_of_a_bootstrap_matrix_equals_each_row_alone():
    rng = np.random.default_rng(1)
    matrix = rng.random((50, 4))
    matrix[rng.random((50, 4)) < 0.3] = np.nan
    compared = np.array([True, True, False, True])
    for kind in ("difference", "ratio"):
        rows = [spread(row, compared, kind) for row in matrix]
        assert spread(matrix, compared, kind) == pytest.approx(rows, nan_ok=True)


def test_every_metric_has_a_sign_and_signed_ones_are_the_expected():
    every = {
        name
        for task in ("binary_classification", "multiclass_classification", "regression")
        for name in metric_functions(
            task, classes=[0, 1, 2], positive=1 if task.startswith("b") else None, with_proba=True
        )
    }
    assert every <= set(METRIC_SIGNS)
    assert ALWAYS_SIGNED_METRICS == ("r2_score",)
    assert signed_metrics(sorted(every), target_signed=False) == ["r2_score"]
    assert signed_metrics(sorted(every), target_signed=True) == ["mean_prediction", "r2_score"]
    assert signed_metrics(["a_metric_we_do_not_know"], target_signed=False) == ["a_metric_we_do_not_know"]
    assert target_can_be_negative("regression", np.array([3.0, -0.5])) is True
    assert target_can_be_negative("regression", np.array([3.0, 0.0])) is False
    assert target_can_be_negative("binary_classification", np.array([-1, 1])) is False


def test_percentile_interval_as_numpy_and_none_when_mostly_undefined():
    values = np.arange(200, dtype=float)
    assert percentile_interval(values, 0.05) == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])))
    mostly_nan = np.full(200, np.nan)
    mostly_nan[:50] = 1.0
    assert percentile_interval(mostly_nan, 0.05) == (None, None)
    low, high = percentile_interval(np.column_stack([values, mostly_nan]), 0.05)
    assert low[1] is None and low[0] == pytest.approx(np.quantile(values, 0.025))


# --- ratio targets on signed metrics refused when the config is read ------------------------------


@pytest.mark.parametrize(
    "config, where",
    [
        ({"fairness": {"sensitive_features": ["sex"], "targets": ["r2_score ratio >= 0.8"]}}, "`fairness.targets[0]`"),
        (
            {
                "fairness": {
                    "sensitive_features": ["sex"],
                    "targets": [{"metric": "r2", "kind": "ratio", "op": ">=", "value": 0.8}],
                }
            },
            "`fairness.targets[0]`",
        ),
        ({"changes": ["r2_score ratio change >= -0.05"]}, "`changes[0]`"),
        (
            {
                "Fairness": {
                    "metric": ["r2_score"],
                    "sensitive_features": ["sex"],
                    "fairness_evaluation_kind": "ratio",
                    "threshold": ">=0.8",
                }
            },
            "`fairness.targets[0]`",
        ),
    ],
)
def test_a_ratio_target_on_r2_is_refused_when_parsed(config, where):
    with pytest.raises(RAIInputError) as raised:
        parse_scorecard_config(config)
    message = str(raised.value)
    assert "\n" not in message
    assert message == (
        f"{where}: r2_score ratio: r2_score can be negative, so a ratio of two groups' values "
        "means nothing; use a difference target"
    )


def test_difference_targets_on_r2_and_ratio_reports_are_accepted():
    parsed = parse_scorecard_config(
        {
            "fairness": {
                "sensitive_features": ["sex"],
                "kind": "ratio",
                "metrics": ["r2_score"],
                "targets": ["r2_score difference <= 0.1"],
            }
        }
    )
    assert parsed["fairness"]["targets"][0]["kind"] == "difference"


# --- the data sets built for it --------------------------------------------------------------------


def _binary_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A model that says yes when x > 0 (a depth-1 tree on x alone). Test rows: groups A (200
    rows, half selected), B (200 rows, 90 selected) and C (3 rows, none selected); site S2
    (the even rows of A and B) has no positive row; region R2 holds 3 rows only."""
    rng = np.random.default_rng(7)
    train_x = rng.normal(size=1000)
    train = pd.DataFrame(
        {"x": train_x, "group": "A", "site": "S1", "region": "R1", "label": np.where(train_x > 0, POS, "no")}
    )
    selected = np.r_[np.arange(200) < 100, np.arange(200) < 90, np.zeros(3, bool)]
    x = np.where(selected, 1.0, -1.0) + rng.uniform(0, 0.5, 403) * np.where(selected, 1, -1)
    group = np.r_[["A"] * 200, ["B"] * 200, ["C"] * 3]
    site = np.where((np.arange(403) % 2 == 0) & (np.arange(403) < 400), "S2", "S1")
    region = np.where(np.arange(403) < 3, "R2", "R1")
    truth = selected ^ (rng.random(403) < 0.15)  # a model right 85% of the time
    truth[site == "S2"] = False
    test = pd.DataFrame({"x": x, "group": group, "site": site, "region": region, "label": np.where(truth, POS, "no")})
    return train, test


@pytest.fixture(scope="module")
def binary_case(tmp_path_factory):
    train, test = _binary_frames()
    model = DecisionTreeClassifier(max_depth=1, random_state=0).fit(train[["x"]], train["label"])
    return write_case(
        tmp_path_factory.mktemp("rare_groups"),
        model,
        train,
        test,
        target="label",
        task_type="binary_classification",
        sensitive=["group", "site", "region"],
        positive_label=POS,
        extra={"test": test},
    )


def _bundle(case, folder: Path, **options) -> tuple[Path, dict]:
    return build_bundle(case, folder, dropped_features=["group", "site", "region"], **options)


@pytest.fixture(scope="module")
def binary_bundle(binary_case, tmp_path_factory):
    """min_group_size left at its default (30); the positive label is the bad outcome."""
    folder, doc = _bundle(binary_case, tmp_path_factory.mktemp("rare_bundle"), desired_outcome="decrease")
    return folder / "dashboard", doc


SCORECARD = {
    "model": {"name": "rare groups"},
    "targets": ["accuracy_score >= 0.5"],
    "fairness": {
        "sensitive_features": ["group", "site", "region"],
        "metrics": ["selection_rate", "recall_score", "accuracy_score"],
        "targets": [
            {"metric": "selection_rate", "kind": "ratio", "op": ">=", "value": 0.8, "sensitive_feature": "group"},
            {"metric": "recall_score", "kind": "difference", "op": "<=", "value": 0.1, "sensitive_feature": "site"},
            {"metric": "accuracy_score", "kind": "difference", "op": "<=", "value": 0.1, "sensitive_feature": "region"},
        ],
    },
}


@pytest.fixture(scope="module")
def binary_card(binary_bundle, tmp_path_factory):
    dashboard, _ = binary_bundle
    out = tmp_path_factory.mktemp("rare_card") / "scorecard"
    result = run_scorecard(dashboard, SCORECARD, out, options=ScorecardOptions(bootstrap=300))
    card = json.loads((out / "scorecard.json").read_text())
    pages = [" ".join((p.extract_text() or "").split()) for p in PdfReader(out / "scorecard.pdf").pages]
    return result, card, pages


def _entry(doc, feature):
    return next(e for e in doc["fairness"] if e["features"] == [feature])


def _card_metric(card, feature, metric):
    entry = next(e for e in card["fairness"] if e["feature"] == feature)
    return next(m for m in entry["metrics"] if m["metric"] == metric)


def test_a_rare_group_is_flagged_and_does_not_make_the_selection_ratio_0(binary_case, binary_bundle, binary_card):
    test = binary_case.extra["test"]
    _, doc = binary_bundle
    _, card, pages = binary_card
    rates = test.assign(s=test["x"] > 0).groupby("group").s.mean()  # the model: yes when x > 0
    assert rates["C"] == 0.0 and rates.min() / rates.max() == 0.0  # fairlearn's ratio over every group
    expected = rates[["A", "B"]].min() / rates[["A", "B"]].max()
    assert expected == pytest.approx(0.9)
    entry = _entry(doc, "group")
    assert entry["ratio"]["selection_rate"] == pytest.approx(expected)
    assert entry["demographic_parity_ratio"] == pytest.approx(expected)
    assert entry["groups_compared"]["selection_rate"] == 2
    c = next(g for g in entry["by_group"] if g["group"] == {"group": "C"})
    assert (c["count"], c["too_few_rows"], c["flag"], c["selection_rate"]) == (3, True, "too few rows (3)", 0.0)
    assert any("'group': 1 group(s) with fewer than 30 test rows" in w and "C (3 rows)" in w for w in doc["warnings"])
    figure = _card_metric(card, "group", "selection_rate")
    assert figure["ratio"]["value"] == pytest.approx(expected)
    (target,) = figure["targets"]
    assert (target["measured"], target["verdict"]) == (pytest.approx(expected), "PASS")
    assert figure["by_group"][2]["flag"] == "too few rows (3)"
    fairness_page = next(p for p in pages if p.startswith("Fairness") or " Fairness Per group" in p)
    assert "C too few rows (3): not compared 3 0" in fairness_page


def test_a_selection_ratio_of_3_predicted_positives_cannot_be_estimated_nor_fail(tmp_path):
    """A model that says yes for 3 rows in 600 (as diabetes' readmission model says it for 4 in
    6,003): 3 men and no woman selected. fairlearn's ratio is 0 and its target would FAIL; here
    it cannot be estimated (UNDEFINED: no pass), in the bundle, the page and the PDF, with the
    reason. The difference, 0.01, is judged."""
    rng = np.random.default_rng(3)
    train = pd.DataFrame({"x": rng.normal(size=500)})
    train["label"] = np.where(train["x"] > 0, POS, "no")
    x = -1.0 - rng.uniform(0, 1, 600)
    x[:3] = 1.0  # the only rows the model selects: men
    test = pd.DataFrame(
        {"x": x, "sex": np.r_[["M"] * 300, ["F"] * 300], "label": np.where(rng.random(600) < 0.1, POS, "no")}
    )
    model = DecisionTreeClassifier(max_depth=1, random_state=0).fit(train[["x"]], train["label"])
    case = write_case(
        tmp_path / "case",
        model,
        train.assign(sex="M"),
        test,
        target="label",
        task_type="binary_classification",
        sensitive=["sex"],
        positive_label=POS,
    )
    folder, doc = build_bundle(case, tmp_path / "bundle", dropped_features=["sex"])
    chosen = pd.Series(model.predict(test[["x"]]) == POS).groupby(test["sex"]).sum()
    assert chosen.to_dict() == {"F": 0, "M": 3}  # the rows as the model sees them
    entry = _entry(doc, "sex")
    reason = "cannot be estimated: the largest group value counts 3 predicted positives (a ratio needs at least 5)"
    assert entry["ratio"]["selection_rate"] is None and entry["undefined"]["ratio"]["selection_rate"] == reason
    assert entry["demographic_parity_ratio"] is None
    assert entry["difference"]["selection_rate"] == pytest.approx(0.01)
    config = {
        "model": {"name": "few selected"},
        "fairness": {
            "sensitive_features": ["sex"],
            "metrics": ["selection_rate"],
            "targets": ["selection_rate ratio >= 0.8", "selection_rate difference <= 0.05"],
        },
    }
    run_scorecard(folder / "dashboard", config, tmp_path / "card", options=ScorecardOptions(bootstrap=100))
    card = json.loads((tmp_path / "card" / "scorecard.json").read_text())
    ratio, difference = _card_metric(card, "sex", "selection_rate")["targets"]
    assert (ratio["measured"], ratio["verdict"], ratio["ci_lower"], ratio["reason"]) == (
        None,
        "UNDEFINED",
        None,
        reason,
    )
    assert (difference["measured"], difference["verdict"]) == (pytest.approx(0.01), "PASS")
    assert card["passed"] is False
    text = " ".join(
        " ".join((p.extract_text() or "").split()) for p in PdfReader(tmp_path / "card" / "scorecard.pdf").pages
    )
    assert re.search(" ?".join(re.escape(w) for w in reason.split()), text), text
    assert reason in shown_text(folder / "dashboard" / A.DASHBOARD_HTML_FILE, "fairness")


def test_rare_group_compared_when_min_group_size_allows_it(binary_case, tmp_path):
    """The option works both ways: with min_group_size 1 the 3-row group counts, ratio 0."""
    folder, doc = _bundle(binary_case, tmp_path, min_group_size=1)
    assert doc["min_group_size"] == 1
    assert _entry(doc, "group")["ratio"]["selection_rate"] == 0.0
    run_scorecard(folder / "dashboard", SCORECARD, tmp_path / "card", options=ScorecardOptions(bootstrap=0))
    card = json.loads((tmp_path / "card" / "scorecard.json").read_text())
    (target,) = _card_metric(card, "group", "selection_rate")["targets"]
    assert (target["measured"], target["verdict"]) == (0.0, "FAIL") and card["passed"] is False


def test_a_group_without_positives_has_no_recall_and_decides_nothing(binary_case, binary_bundle, binary_card):
    test = binary_case.extra["test"]
    _, doc = binary_bundle
    result, card, pages = binary_card
    s2 = test[test["site"] == "S2"]
    assert (s2["label"] == POS).sum() == 0 and len(s2) == 200
    overview = {(g["feature"], g["group"]): g for g in doc["model_overview"]["sensitive_groups"]}
    assert overview[("site", "S2")]["recall_score"] is None  # not 0
    assert overview[("site", "S2")]["precision_score"] == 0.0  # it has predicted positives, all wrong
    entry = _entry(doc, "site")
    assert entry["difference"]["recall_score"] is None
    assert entry["undefined"]["difference"]["recall_score"] == "fewer than two groups of at least 30 rows have a value"
    assert entry["equalized_odds_difference"] is None  # needs the true positive rate of both sites
    figure = _card_metric(card, "site", "recall_score")
    assert figure["by_group"][1]["value"] is None
    (target,) = figure["targets"]
    assert (target["measured"], target["verdict"]) == (None, "UNDEFINED")
    assert target["reason"] == "fewer than two groups of at least 30 rows have a value"
    assert re.search(
        r"recall_score difference across site groups <= 0\.1 fewer than two groups of at least 30 "
        r"rows have a value 403 n/a n/a UNDEFINED",
        pages[0],
    )


def test_a_difference_with_one_compared_group_is_undefined_not_0(binary_bundle, binary_card):
    _, doc = binary_bundle
    result, card, pages = binary_card
    entry = _entry(doc, "region")
    for metric in ("accuracy_score", "selection_rate"):
        assert entry["difference"][metric] is None and entry["ratio"][metric] is None
        assert entry["undefined"]["difference"][metric] == "fewer than two groups of at least 30 rows"
    (target,) = _card_metric(card, "region", "accuracy_score")["targets"]
    assert (target["measured"], target["verdict"]) == (None, "UNDEFINED")
    # Not missed, and not passed either: a gate never lets through what could not be judged.
    assert (card["passed"], card["n_targets"], card["n_missed"], card["n_undefined"]) == (False, 4, 0, 2)
    assert (result.passed, result.headline["targets_met"], result.headline["targets_undefined"]) == (False, 2.0, 2.0)
    assert (
        "NOT PASSED: no target missed, but 2 of 4 could not be judged (UNDEFINED: too few rows or no value)."
        in pages[0]
    )
    assert (
        "accuracy_score difference across region groups: undefined, fewer than two groups of at least 30 rows."
        in " ".join(pages)
    )


def test_gather_and_scorecard_give_fairlearns_figures_on_the_same_rows(binary_case, binary_bundle, binary_card):
    test = binary_case.extra["test"]
    _, doc = binary_bundle
    _, card, _ = binary_card
    y_pred = np.where(test["x"] > 0, POS, "no")
    checked = 0
    for feature in ("group", "site", "region"):
        sizes = test[feature].map(test[feature].value_counts())
        keep = (sizes >= 30).to_numpy()
        frame = flm.MetricFrame(
            metrics=FAIRLEARN, y_true=test["label"][keep], y_pred=y_pred[keep], sensitive_features=test[feature][keep]
        )
        for metric in FAIRLEARN:
            defined = frame.by_group[metric].notna().sum() >= 2
            for kind in ("difference", "ratio"):
                expected = getattr(frame, kind)(method="between_groups")[metric] if defined else None
                gathered = _entry(doc, feature)[kind][metric]
                scored = _card_metric(card, feature, metric)[kind]["value"]
                if expected is None:
                    assert gathered is None and scored is None, (feature, metric, kind)
                else:
                    assert gathered == pytest.approx(expected, abs=1e-12) and scored == gathered, (feature, metric)
                    checked += 1
    # group: 3 metrics x 2 kinds; site: all but recall; region: nothing (one group compared)
    assert checked == 10


def test_group_intervals_equal_a_bootstrap_by_hand(binary_case, binary_card):
    """Each group's 95% interval against 2,000 resamples of the rows drawn here with numpy
    and scored with scikit-learn (two bootstraps: equal within their noise)."""
    test = binary_case.extra["test"]
    _, card, pages = binary_card
    y_true, y_pred = test["label"].to_numpy(), np.where(test["x"] > 0, POS, "no")
    groups = test["group"].to_numpy()
    rng = np.random.default_rng(3)
    draws = []
    for _ in range(2000):
        picked = rng.integers(0, len(test), len(test))
        t, p, g = y_true[picked], y_pred[picked], groups[picked]
        draws.append([skm.accuracy_score(t[g == k], p[g == k]) for k in ("A", "B")])
    low, high = np.quantile(np.array(draws), [0.025, 0.975], axis=0)
    figure = _card_metric(card, "group", "accuracy_score")
    for i, name in enumerate(("A", "B")):
        group = figure["by_group"][i]
        assert group["group"] == name
        assert group["ci_lower"] <= group["value"] <= group["ci_upper"]
        assert group["ci_lower"] == pytest.approx(low[i], abs=0.02) and group["ci_upper"] == pytest.approx(
            high[i], abs=0.02
        )
    difference = figure["difference"]
    assert difference["ci_lower"] <= difference["value"] <= difference["ci_upper"]
    fairness_page = next(p for p in pages if "too few rows (3)" in p)
    a = figure["by_group"][0]
    assert f"{a['value']:.4g} [{a['ci_lower']:.4g}, {a['ci_upper']:.4g}]" in fairness_page


def test_desired_outcome_and_min_group_size_are_carried_and_shown(binary_bundle, binary_card, tmp_path):
    dashboard, doc = binary_bundle
    _, card, pages = binary_card
    assert (doc["desired_outcome"], doc["min_group_size"]) == ("decrease", 30)
    assert (card["desired_outcome"], card["min_group_size"]) == ("decrease", 30)
    assert "Desired outcome a lower probability of yes (desired_outcome: decrease)" in pages[0]
    assert (
        "Fairness groups groups of fewer than 30 test rows are shown, flagged and left out of differences" in pages[0]
    )
    page = page_data(dashboard / A.DASHBOARD_HTML_FILE)
    assert page["doc"]["desired_outcome"] == "decrease" and page["doc"]["min_group_size"] == 30
    assert page["doc"]["fairness"] == json.loads((dashboard / A.INSIGHTS_JSON_FILE).read_text())["fairness"]


def test_the_page_shows_flags_undefined_figures_and_the_desired_outcome(binary_bundle):
    dashboard, _ = binary_bundle
    page = dashboard / A.DASHBOARD_HTML_FILE
    overview, fairness = (" ".join(shown_text(page, tab).split()) for tab in ("overview", "fairness"))
    assert "Desired outcome a lower probability of yes (desired_outcome: decrease)" in overview
    assert "group=C 3 ⚠ too few rows (3), not compared" in fairness
    assert (
        "difference of recall_score, false_negative_rate, roc_auc_score: undefined, fewer than two groups of at "
        "least 30 rows have a value." in fairness
    )


# --- regression: mean_prediction of a target that can be negative --------------------------------


@pytest.fixture(scope="module")
def signed_target_bundle(tmp_path_factory):
    rng = np.random.default_rng(11)

    def frame(n):
        x = rng.normal(size=n)
        return pd.DataFrame(
            {"x": x, "side": np.where(rng.random(n) < 0.5, "left", "right"), "y": 2 * x + rng.normal(0, 0.1, n)}
        )

    train, test = frame(300), frame(200)
    model = LinearRegression().fit(train[["x"]], train["y"])
    case = write_case(
        tmp_path_factory.mktemp("signed"), model, train, test, target="y", task_type="regression", sensitive=["side"]
    )
    folder, doc = build_bundle(case, tmp_path_factory.mktemp("signed_bundle"), dropped_features=["side"])
    return folder / "dashboard", doc


def test_no_ratio_of_signed_metrics_and_a_ratio_target_on_them_refused(signed_target_bundle, tmp_path):
    dashboard, doc = signed_target_bundle
    assert doc["model_overview"]["signed_metrics"] == ["r2_score", "mean_prediction"]
    entry = _entry(doc, "side")
    for metric in ("r2_score", "mean_prediction"):
        assert entry["ratio"][metric] is None and entry["difference"][metric] is not None
        assert entry["undefined"]["ratio"][metric] == "no ratio of a metric that can be negative"
    assert entry["ratio"]["mean_absolute_error"] is not None
    out = tmp_path / "card"
    config = {"fairness": {"sensitive_features": ["side"], "targets": ["mean_prediction ratio >= 0.8"]}}
    with pytest.raises(
        RAIInputError,
        match=r"^`fairness.targets\[0\]`: mean_prediction ratio: mean_prediction can be "
        r"negative \(the target has negative values\), so a ratio",
    ):
        run_scorecard(dashboard, config, out, options=ScorecardOptions(bootstrap=0))
    assert not out.exists()
    # The same check for a caller with the data's target (e.g. the audit config's checks).
    check_against_bundle(
        parse_scorecard_config(config),
        metric_names=["mean_prediction"],
        features=["side"],
        cohorts=[],
        signed_metrics=[],
    )
    card = run_scorecard(
        dashboard,
        {"fairness": {"sensitive_features": ["side"], "metrics": ["mean_prediction"], "kind": "ratio"}},
        out,
        options=ScorecardOptions(bootstrap=20),
    )
    shown = json.loads((out / "scorecard.json").read_text())
    figure = _card_metric(shown, "side", "mean_prediction")
    assert figure["signed"] is True and figure["ratio"]["value"] is None and card.passed
