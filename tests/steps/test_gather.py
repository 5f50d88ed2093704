"""gather: metrics and fairness equal an independent computation; foreign insights refused."""

from __future__ import annotations

import json
import shutil
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from rai_audit.core import ArtifactIntegrityError
from rai_audit.core import artifacts as A
from rai_audit.steps.error_analysis import run_error_analysis
from rai_audit.steps.gather import main, run_gather
from support import build_bundle, page_data


@pytest.fixture(scope="module")
def adult(adult_bundle):
    return adult_bundle


@pytest.fixture(scope="module")
def compas(compas_case, tmp_path_factory):
    return build_bundle(compas_case, tmp_path_factory.mktemp("compas"))


@pytest.fixture(scope="module")
def insurance(insurance_case, tmp_path_factory):
    return build_bundle(insurance_case, tmp_path_factory.mktemp("insurance"))


def _model_outputs(case):
    """Predictions recomputed here, independently of the constructor."""
    test = pd.read_parquet(case.test)
    model = joblib.load(case.model)
    X = test.drop(columns=case.target)
    proba = model.predict_proba(X) if hasattr(model, "predict_proba") else None
    return test, test[case.target], model.predict(X), proba, model


def test_binary_overall_metrics_match_sklearn(adult, adult_case):
    _, doc = adult
    test, y, pred, proba, model = _model_outputs(adult_case)
    pos = ">50K"
    expected = {
        "accuracy_score": skm.accuracy_score(y, pred),
        "balanced_accuracy_score": skm.balanced_accuracy_score(y, pred),
        "precision_score": skm.precision_score(y, pred, pos_label=pos),
        "recall_score": skm.recall_score(y, pred, pos_label=pos),
        "f1_score": skm.f1_score(y, pred, pos_label=pos),
        "selection_rate": np.mean(pred == pos),
        "roc_auc_score": skm.roc_auc_score(y == pos, proba[:, list(model.classes_).index(pos)]),
        "log_loss": skm.log_loss(y, proba, labels=model.classes_),
    }
    overall = doc["model_overview"]["overall"]
    assert overall["count"] == len(test) == 16281
    for name, value in expected.items():
        assert overall[name] == pytest.approx(value, rel=1e-9), name
    cm = skm.confusion_matrix(y, pred, labels=model.classes_)
    assert overall["confusion_matrix"]["matrix"] == cm.tolist()
    fpr = cm[0, 1] / cm[0].sum()
    assert overall["false_positive_rate"] == pytest.approx(fpr)


def test_cohort_metrics_and_empty_cohort(adult, adult_case):
    _, doc = adult
    test, y, pred, _, _ = _model_outputs(adult_case)
    young = (test["age"] < 30).to_numpy()
    cohorts = {c["name"]: c for c in doc["model_overview"]["cohorts"]}
    assert cohorts["Under 30"]["count"] == young.sum()
    assert cohorts["Under 30"]["accuracy_score"] == pytest.approx(skm.accuracy_score(y[young], pred[young]))
    assert cohorts["Nobody"]["count"] == 0
    assert cohorts["Nobody"]["accuracy_score"] is None
    assert any("Nobody" in w for w in doc["warnings"])


def _by_hand_rates(frame: pd.DataFrame, keys: list[str], pos: str) -> pd.DataFrame:
    """Per-group accuracy, selection rate, TPR and FPR with pandas alone."""
    frame = frame.assign(correct=frame.y == frame.pred, selected=frame.pred == pos, actual=frame.y == pos)
    return frame.groupby(keys).apply(
        lambda g: pd.Series(
            {
                "count": len(g),
                "accuracy": g.correct.mean(),
                "selection_rate": g.selected.mean(),
                "tpr": g.selected[g.actual].mean(),
                "fpr": g.selected[~g.actual].mean(),
            }
        ),
        include_groups=False,
    )


@pytest.mark.parametrize("keys", [["sex"], ["race"], ["sex", "race"]])
def test_binary_fairness_by_hand(adult, adult_case, keys):
    """Per group by pandas; differences and ratios over the groups of at least 30 rows (the
    default min_group_size), the others flagged."""
    _, doc = adult
    test, y, pred, _, _ = _model_outputs(adult_case)
    all_rates = _by_hand_rates(test[keys].assign(y=y, pred=pred), keys, ">50K")
    rates = all_rates[all_rates["count"] >= 30]
    entry = next(e for e in doc["fairness"] if e["features"] == keys)
    assert sum(g["count"] for g in entry["by_group"]) == len(test)
    assert entry["min_group_size"] == doc["min_group_size"] == 30
    for group in entry["by_group"]:
        index = tuple(group["group"][k] for k in keys)
        row = all_rates.loc[index if len(keys) > 1 else index[0]]
        assert group["count"] == row["count"] and isinstance(group["count"], int)
        assert group["accuracy_score"] == pytest.approx(row["accuracy"])
        assert group["too_few_rows"] is bool(row["count"] < 30)
        assert group["flag"] == (f"too few rows ({group['count']})" if row["count"] < 30 else None)
    assert entry["groups_compared"]["accuracy_score"] == len(rates)
    assert entry["difference"]["accuracy_score"] == pytest.approx(rates.accuracy.max() - rates.accuracy.min())
    assert entry["ratio"]["accuracy_score"] == pytest.approx(rates.accuracy.min() / rates.accuracy.max())
    dp = rates.selection_rate.max() - rates.selection_rate.min()
    assert entry["demographic_parity_difference"] == pytest.approx(dp)
    assert entry["difference"]["selection_rate"] == pytest.approx(dp)
    eo = max(rates.tpr.max() - rates.tpr.min(), rates.fpr.max() - rates.fpr.min())
    assert entry["equalized_odds_difference"] == pytest.approx(eo)


def test_sensitive_group_overview_agrees_with_fairness(adult):
    _, doc = adult
    overview = {(g["feature"], g["group"]): g for g in doc["model_overview"]["sensitive_groups"]}
    sex = next(e for e in doc["fairness"] if e["features"] == ["sex"])
    for group in sex["by_group"]:
        mine = overview[("sex", group["group"]["sex"])]
        for name in doc["model_overview"]["metric_names"]:
            assert mine[name] == pytest.approx(group[name], nan_ok=True), name


def test_multiclass_metrics_and_fairness(compas, compas_case):
    _, doc = compas
    test, y, pred, proba, model = _model_outputs(compas_case)
    overall = doc["model_overview"]["overall"]
    assert doc["task_type"] == "multiclass_classification"
    assert overall["f1_score"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert overall["precision_score"] == pytest.approx(skm.precision_score(y, pred, average="macro"))
    assert overall["roc_auc_score"] == pytest.approx(
        skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=model.classes_)
    )
    assert overall["confusion_matrix"]["matrix"] == skm.confusion_matrix(y, pred, labels=model.classes_).tolist()
    assert "selection_rate" not in overall and "demographic_parity_difference" not in doc["fairness"][0]
    by_race = test.assign(ok=(y == pred)).groupby("race").ok.agg(["mean", "size"])
    race = next(e for e in doc["fairness"] if e["features"] == ["race"])
    compared = by_race[by_race["size"] >= 30]["mean"]
    assert len(compared) < len(by_race)  # COMPAS's smallest race groups are under 30 rows
    assert race["difference"]["accuracy_score"] == pytest.approx(compared.max() - compared.min())
    assert [g["label"] for g in race["by_group"] if g["too_few_rows"]] == [
        f"race={r}" for r in by_race.index[by_race["size"] < 30]
    ]


def test_regression_metrics_and_binned_sensitive_feature(insurance, insurance_case):
    _, doc = insurance
    test, y, pred, _, _ = _model_outputs(insurance_case)
    overall = doc["model_overview"]["overall"]
    err = y - pred
    assert overall["mean_absolute_error"] == pytest.approx(np.abs(err).mean())
    assert overall["root_mean_squared_error"] == pytest.approx(np.sqrt((err**2).mean()))
    assert overall["r2_score"] == pytest.approx(1 - (err**2).sum() / ((y - y.mean()) ** 2).sum())
    assert overall["mean_prediction"] == pytest.approx(pred.mean())
    age = next(e for e in doc["fairness"] if e["features"] == ["age"])
    edges = age["binning"]["age"]["edges"]
    assert edges == pytest.approx(np.quantile(test["age"], [0, 0.25, 0.5, 0.75, 1]).tolist())
    assert sum(g["count"] for g in age["by_group"]) == len(test)
    sex = next(e for e in doc["fairness"] if e["features"] == ["sex"])
    mae = test.assign(e=np.abs(err)).groupby("sex").e.mean()
    assert sex["difference"]["mean_absolute_error"] == pytest.approx(mae.max() - mae.min())


def test_data_analysis_and_tables(adult, adult_case):
    folder, doc = adult
    test, y, pred, _, _ = _model_outputs(adult_case)
    features = {f["feature"]: f for f in doc["data_analysis"]["features"]}
    assert features["workclass"]["missing"] == test["workclass"].isna().sum() == 963
    assert features["age"]["mean"] == pytest.approx(test["age"].mean())
    balance = doc["data_analysis"]["balance"]
    assert balance["overall"]["y_true"] == y.value_counts().to_dict()
    women = (test["sex"] == "Female").to_numpy()
    assert balance["sensitive_groups"]["sex"]["Female"]["y_pred"] == pd.Series(pred[women]).value_counts().to_dict()
    table = pd.read_parquet(folder / "dashboard" / A.TABLES_DIR / "metrics.parquet")
    row = table.query("scope == 'overall' and metric == 'accuracy_score'")
    assert row.value.item() == pytest.approx(doc["model_overview"]["overall"]["accuracy_score"])
    fairness = pd.read_parquet(folder / "dashboard" / A.TABLES_DIR / "fairness.parquet")
    assert set(fairness.features) == {"sex", "race", "sex & race"}
    A.verify_manifest(folder / "dashboard")


def _fake_insight(folder, kind, run_id, schema_version=A.SCHEMA_VERSION):
    with A.artifact_writer(folder) as out:
        meta = A.new_meta(kind, run_id)
        meta["schema_version"] = schema_version
        A.write_json(out / A.META_FILE, meta)
    return folder


def test_gather_embeds_an_insight_of_this_run(adult, tmp_path):
    folder, doc = adult
    run_error_analysis(folder / "constructor", tmp_path / "ea")
    run_gather(folder / "constructor", [tmp_path / "ea"], tmp_path / "out")
    gathered = json.loads((tmp_path / "out" / A.INSIGHTS_JSON_FILE).read_text())
    assert list(gathered["insights"]) == ["error_analysis"]
    assert gathered["error_analysis"] == A.read_json(tmp_path / "ea" / A.INSIGHT_RESULT_FILE)
    copy = tmp_path / "out" / "insights" / "error_analysis"
    assert A.read_json(copy / A.META_FILE)["run_id"] == doc["run_id"]
    page = page_data(tmp_path / "out" / A.DASHBOARD_HTML_FILE)  # the figures the page draws from
    assert page["doc"]["error_analysis"] == gathered["error_analysis"]
    leaves = [v["name"] for v in page["doc"]["cohort_views"] if v["kind"] == "error_leaf"]
    assert leaves == [
        leaf["name"]
        for kind in ("worst_leaves", "best_leaves")
        for leaf in gathered["error_analysis"]["cohort_errors"][kind]
    ]


@pytest.mark.parametrize(
    "insights, match",
    [
        ([("error_analysis", "another-run")], "comes from constructor run 'another-run'"),
        ([("error_analysis", None), ("error_analysis", None)], "two insights of kind 'error_analysis'"),
        ([("mystery", None)], "gather takes one of"),
        ([("constructor", None)], "gather takes one of"),
    ],
)
def test_gather_refuses_foreign_or_duplicate_insights(adult, tmp_path, insights, match):
    folder, doc = adult
    dirs = [_fake_insight(tmp_path / f"i{i}", kind, run or doc["run_id"]) for i, (kind, run) in enumerate(insights)]
    with pytest.raises(ArtifactIntegrityError, match=match):
        run_gather(folder / "constructor", dirs, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_gather_refuses_unknown_schema_version(adult, tmp_path):
    folder, doc = adult
    insight = _fake_insight(tmp_path / "ea", "error_analysis", doc["run_id"], schema_version="9.9")
    with pytest.raises(ArtifactIntegrityError, match="schema_version '9.9'"):
        run_gather(folder / "constructor", [insight], tmp_path / "out")


def test_gather_refuses_a_tampered_constructor(adult, tmp_path):
    folder, _ = adult
    copy = tmp_path / "constructor"
    shutil.copytree(folder / "constructor", copy)
    predictions = pd.read_parquet(copy / A.PREDICTIONS_FILE)
    predictions.loc[0, A.Y_PRED] = "<=50K" if predictions.loc[0, A.Y_PRED] == ">50K" else ">50K"
    predictions.to_parquet(copy / A.PREDICTIONS_FILE, index=False)
    with pytest.raises(ArtifactIntegrityError, match=r"changed: predictions\.parquet"):
        run_gather(copy, [], tmp_path / "out")
    assert main(["--constructor", str(copy), "--output", str(tmp_path / "out2")]) == 2


def counted_by_row(name: str, y: np.ndarray, pred: np.ndarray, positive: Any) -> np.ndarray | None:
    """For a metric that is a share of rows, whether each row is one it counts (its numerator);
    None for another metric."""
    if name == "accuracy_score":
        return y == pred
    if name == "error_rate":
        return y != pred
    if positive is None:
        return None
    actual, chosen = y == positive, pred == positive
    return {
        "selection_rate": chosen,
        "recall_score": actual & chosen,
        "precision_score": actual & chosen,
        "false_positive_rate": chosen & ~actual,
        "false_negative_rate": actual & ~chosen,
    }.get(name)


def too_few_for_a_ratio(by_group: pd.Series, counted: np.ndarray | None, sensitive: pd.DataFrame) -> bool:
    """Whether the groups with the largest value count fewer than 5 rows: no ratio (core.fairness)."""
    if counted is None:
        return False
    per_group = pd.Series(counted).groupby([sensitive[c].to_numpy() for c in sensitive.columns]).sum()
    if isinstance(per_group.index, pd.MultiIndex) != isinstance(by_group.index, pd.MultiIndex):
        per_group.index = per_group.index.get_level_values(0)
    return per_group.loc[by_group.index[by_group == by_group.max()]].max() < 5


@pytest.mark.parametrize(
    "bundle, case", [("adult", "adult_case"), ("compas", "compas_case"), ("insurance", "insurance_case")]
)
def test_fairness_equals_fairlearn_metric_frame(bundle, case, request):
    """Every per-group figure, difference, ratio and parity figure equals fairlearn's."""
    from fairlearn import metrics as flm

    from rai_audit.core.metrics import PROBA_METRICS, group_labels, metric_functions

    _, doc = request.getfixturevalue(bundle)
    case = request.getfixturevalue(case)
    test, y, pred, proba, _ = _model_outputs(case)
    fns = metric_functions(
        doc["task_type"], classes=doc["classes"], positive=doc["positive_label"], with_proba=proba is not None
    )
    metrics = {name: fn for name, fn in fns.items() if name not in PROBA_METRICS}
    signed = {"r2_score"} | ({"mean_prediction"} if doc["task_type"] == "regression" and (y < 0).any() else set())
    assert doc["model_overview"]["signed_metrics"] == [m for m in fns if m in signed]
    for entry in doc["fairness"]:
        sensitive = pd.DataFrame({f: group_labels(test[f])[0] for f in entry["features"]})
        frame = flm.MetricFrame(metrics=metrics, y_true=y.to_numpy(), y_pred=pred, sensitive_features=sensitive)
        for name in metrics:  # every group shown, small ones too
            assert [g[name] for g in entry["by_group"]] == pytest.approx(frame.by_group[name].tolist(), nan_ok=True)
        # Differences and ratios: fairlearn on the rows of the groups of at least 30 rows.
        size = (
            sensitive.groupby(list(sensitive.columns)).transform("size")
            if len(entry["features"]) > 1
            else sensitive.iloc[:, 0].map(sensitive.iloc[:, 0].value_counts())
        )
        keep = np.asarray(size).reshape(len(test), -1)[:, 0] >= 30
        frame = flm.MetricFrame(
            metrics=metrics, y_true=y.to_numpy()[keep], y_pred=pred[keep], sensitive_features=sensitive[keep]
        )
        positive = doc["positive_label"] if doc["task_type"] == "binary_classification" else None
        kept = sensitive[keep].reset_index(drop=True)
        for name in metrics:
            by_group = frame.by_group[name].dropna()
            defined = len(by_group) >= 2
            assert entry["difference"][name] == (pytest.approx(frame.difference()[name]) if defined else None), name
            counted = (
                None
                if doc["task_type"] == "regression"
                else counted_by_row(name, y.to_numpy()[keep], pred[keep], positive)
            )
            few = defined and too_few_for_a_ratio(by_group, counted, kept)
            ratio = frame.ratio()[name] if defined and name not in signed and not few else None
            assert entry["ratio"][name] == (
                None if ratio is None or not np.isfinite(ratio) else pytest.approx(ratio)
            ), name
        if doc["task_type"] == "binary_classification":
            truth, chosen = (y == doc["positive_label"]).astype(int), (pred == doc["positive_label"]).astype(int)
            for name, fn in (
                ("demographic_parity_difference", flm.demographic_parity_difference),
                ("demographic_parity_ratio", flm.demographic_parity_ratio),
                ("equalized_odds_difference", flm.equalized_odds_difference),
                ("equalized_odds_ratio", flm.equalized_odds_ratio),
            ):
                expected = fn(truth[keep], chosen[keep], sensitive_features=sensitive[keep])
                few = name.endswith("ratio") and any(
                    too_few_for_a_ratio(
                        frame.by_group[metric].dropna(),
                        counted_by_row(metric, y.to_numpy()[keep], pred[keep], positive),
                        kept,
                    )
                    for metric in (("selection_rate",) if "parity" in name else ("recall_score", "false_positive_rate"))
                )
                assert entry[name] == (None if few else pytest.approx(expected)), name
