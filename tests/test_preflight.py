"""`rai-audit run` checks everything the config names before any step runs (rai_audit.preflight).

Issue 19 (errors arrived late: an unknown metric, cohort or feature failed only after every
analysis ran; bad inputs must be refused in one line with nothing written) and issue 29
(a feature named like an internal column, a cohort `value: null`, cohorts named like the
built-in views). The data: the medical-charges set (1,338 rows), a smoker classifier and a
charges regression trained here, each with a text column that has missing values.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from rai_audit.cli import main
from rai_audit.config import load_config, resolve_config
from rai_audit.core import RAIInputError
from rai_audit.core import artifacts as A
from rai_audit.steps.constructor import ConstructorOptions, run_constructor
from support import shared_dataset

CHECK_SECONDS = 10  # "in seconds": the checks, not the imports


def _charges_data() -> pd.DataFrame:
    data = shared_dataset("insurance.parquet")
    # A text column the model never sees (dropped), missing for every third row: what a
    # cohort `value: null` selects.
    data["referral"] = np.where(np.arange(len(data)) % 3 == 0, None, "clinic")
    return data


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, dict[str, Any]]:
    """A binary classifier (smoker) and a regression of charges centred on their median (so
    the target has negative values), each with its model, train and test files."""
    folder = tmp_path_factory.mktemp("preflight")
    data = _charges_data()
    out: dict[str, dict[str, Any]] = {}
    for name, target, numeric, estimator in (
        ("smoker", "smoker", ["age", "bmi", "children", "charges"], LogisticRegression(max_iter=1000)),
        ("charges", "charges", ["age", "bmi", "children"], LinearRegression()),
    ):
        frame = data.copy()
        if name == "charges":
            frame["charges"] = frame["charges"] - frame["charges"].median()
        categorical = [c for c in ("sex", "smoker", "region") if c != target]
        model = Pipeline(
            [
                (
                    "encode",
                    ColumnTransformer(
                        [
                            ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
                            ("num", StandardScaler(), numeric),
                        ]
                    ),
                ),
                ("model", estimator),
            ]
        )
        train, test = frame.iloc[:1000].reset_index(drop=True), frame.iloc[1000:].reset_index(drop=True)
        model.fit(train.drop(columns=[target, "referral"]), train[target])
        paths = {
            k: folder / name / f"{k}.{ext}"
            for k, ext in (("model", "joblib"), ("train", "parquet"), ("test", "parquet"))
        }
        paths["model"].parent.mkdir()
        joblib.dump(model, paths["model"])
        train.to_parquet(paths["train"], index=False)
        test.to_parquet(paths["test"], index=False)
        task = "binary_classification" if name == "smoker" else "regression"
        config = {
            "model": str(paths["model"]),
            "allow_pickle": True,
            "train_data": str(paths["train"]),
            "test_data": str(paths["test"]),
            "target_column": target,
            "task_type": task,
            "sensitive_features": ["sex"],
            "dropped_features": ["referral"],
        }
        if name == "smoker":
            config["positive_label"] = "yes"
        out[name] = {"config": config, "train_frame": train, "test_frame": test, **paths}
    return out


def write_config(folder: Path, config: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "audit.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def refused(tmp_path: Path, config: dict[str, Any], capsys) -> str:
    """`rai-audit run` on the config: refused within seconds, one line, no output folder."""
    path, output = write_config(tmp_path / "in", config), tmp_path / "out"
    started = time.monotonic()
    code = main(["run", str(path), "--output", str(output)])
    seconds = time.monotonic() - started
    err = capsys.readouterr().err
    assert code != 0
    assert seconds < CHECK_SECONDS, f"the checks took {seconds:.1f} s"
    assert not output.exists(), "nothing may be written"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rai-audit: error: "), err
    return lines[0]


# --- issue 19: what used to fail only after every analysis ran ---------------------------------

SCORECARD = {"targets": ["accuracy_score >= 0.5"]}
LATE_ERRORS = [
    pytest.param(
        {"scorecard": {"config": {"targets": ["r2_score >= 0.5"]}}},
        r"config `scorecard`: `targets\[0\]`: unknown metric 'r2_score' for this model; the metrics are "
        r"\['accuracy_score', ",
        id="metric-of-another-task",
    ),
    pytest.param(
        {"scorecard": {"config": {"targets": ["accuracy_scor >= 0.5"]}}},
        r"unknown metric 'accuracy_scor'",
        id="misspelt-metric",
    ),
    pytest.param(
        {
            "scorecard": {
                "config": {"targets": [{"metric": "recall_score", "op": ">=", "value": 0.5, "cohort": "Over 60"}]}
            },
            "cohorts": [{"name": "Over 50", "filter": {"column": "age", "op": ">", "value": 50}}],
        },
        r"`targets\[0\]`: unknown cohort 'Over 60'; the cohorts are \['Over 50'\]",
        id="target-cohort",
    ),
    pytest.param(
        {
            "scorecard": {
                "config": {
                    "fairness": {"sensitive_features": ["gender"], "targets": ["selection_rate difference <= 0.1"]}
                }
            }
        },
        r"`fairness.sensitive_features`: unknown feature 'gender'",
        id="fairness-feature",
    ),
    pytest.param(
        {
            "scorecard": {
                "config": {
                    "targets": [
                        {
                            "metric": "accuracy_score",
                            "op": ">=",
                            "value": 0.5,
                            "cohort": "Error tree: worst leaf 1 (node 3)",
                        }
                    ]
                }
            }
        },
        r"unknown cohort 'Error tree: worst leaf 1 \(node 3\)'",
        id="leaf-cohort-without-error-analysis",
    ),
    pytest.param(
        {"causal": {"treatment_features": ["bmi", "weight"]}},
        r"config `causal.treatment_features` names \['weight'\], not among the model.s features",
        id="treatment",
    ),
    pytest.param(
        {"causal": {"treatment_features": ["referral"]}},  # dropped: never reaches the fit
        r"config `causal.treatment_features` names \['referral'\], not among the model.s features",
        id="treatment-dropped",
    ),
    pytest.param(
        {"causal": {"treatment_features": ["bmi"], "heterogeneity_features": ["agee"]}},
        r"config `causal.heterogeneity_features` names \['agee'\], not among the model.s features "
        r"\(did you mean \['age'\]\?\)",
        id="heterogeneity",
    ),
    pytest.param(
        {"counterfactual": {"features_to_vary": ["bmi", "height"]}},
        r"config `counterfactual.features_to_vary` names \['height'\], not among the model's features",
        id="features-to-vary",
    ),
    pytest.param(
        {"counterfactual": {"permitted_range": {"bmii": [20, 30]}}},
        r"config `counterfactual.permitted_range` names \['bmii'\]",
        id="permitted-range",
    ),
    pytest.param(
        {"counterfactual": {"increase_only": ["referral"]}},  # dropped: not a model feature
        r"config `counterfactual.increase_only` names \['referral'\], not among the model's features",
        id="increase-only-dropped",
    ),
    pytest.param(
        {"counterfactual": {"increase_only": ["region"]}},
        r"config `counterfactual.increase_only`/`decrease_only` need numeric features, got \[.region.\]",
        id="increase-only-text",
    ),
    pytest.param(
        {"immutable_features": ["age"], "counterfactual": {"increase_only": ["age"]}},
        r"config `counterfactual.increase_only` names \['age'\], which counterfactuals hold fixed "
        r"\(immutable\); list them in `counterfactual.features_to_vary`",
        id="increase-only-immutable",
    ),
    pytest.param(
        {"counterfactual": {"permitted_range": {"sex": ["female"]}}},
        r"config `counterfactual.permitted_range` names \['sex'\], which counterfactuals hold fixed "
        r"\(sensitive\)",
        id="permitted-range-sensitive",
    ),
    pytest.param(
        {"immutable_features": ["age", "bmi", "children", "region", "charges"], "counterfactual": {}},
        r"config `counterfactual`: every model feature is sensitive or immutable",
        id="all-held-fixed",
    ),
    pytest.param(
        {"counterfactual": {"rows": "Over 60"}},
        r"config `counterfactual.rows` is 'Over 60': it must be 'sample', 'all' or the name of a cohort",
        id="counterfactual-rows",
    ),
    pytest.param(
        {"error_analysis": {"heatmap_features": ["age", "income"]}},
        r"config `error_analysis.heatmap_features` names \['income'\]",
        id="heatmap",
    ),
    pytest.param(
        {"error_analysis": {"tree_features": ["bmi", "zip"]}},
        r"config `error_analysis.tree_features` names \['zip'\]",
        id="tree",
    ),
    pytest.param(
        {"sensitive_features": ["sex", "race"]},
        r"`sensitive_features` names columns that are not in the data: \['race'\]",
        id="sensitive",
    ),
    pytest.param(
        {"immutable_features": ["age", "birthplace"]},
        r"`immutable_features` names columns that are not in the data: \['birthplace'\]",
        id="immutable",
    ),
    pytest.param(
        {"target_column": "smokes"}, r"`target_column` 'smokes' is not a column of the train data", id="target"
    ),
    pytest.param(
        {"cohorts": [{"name": "Young", "filter": {"column": "agee", "op": "<", "value": 30}}]},
        r"cohort 'Young': column 'agee' is not a feature",
        id="cohort-column",
    ),
    pytest.param(
        {"cohorts": [{"name": "South", "filter": {"column": "region", "op": "<", "value": 3}}]},
        r"cohort 'South': filter on 'region': `<` needs a numeric column",
        id="cohort-type",
    ),
]


@pytest.mark.parametrize("change, match", LATE_ERRORS)
def test_what_a_step_would_find_late_is_refused_before_any_step(cases, tmp_path, capsys, change, match):
    line = refused(tmp_path, {**cases["smoker"]["config"], **change}, capsys)
    assert re.search(match, line), line


def test_every_problem_is_reported_in_one_line(cases, tmp_path, capsys):
    config = {
        **cases["smoker"]["config"],
        "immutable_features": ["age"],
        "causal": {"treatment_features": ["age", "weight"]},
        "counterfactual": {"features_to_vary": ["height"]},
        "scorecard": {"config": {"targets": ["r2_score >= 0.5"]}},
    }
    line = refused(tmp_path, config, capsys)
    assert "the audit config has 4 problems: (1) " in line
    for part in (
        "`causal.treatment_features` names ['age'], which `immutable_features` lists",
        "`causal.treatment_features` names ['weight']",
        "`counterfactual.features_to_vary` names ['height']",
        "unknown metric 'r2_score'",
    ):
        assert part in line


def test_a_correct_config_passes_the_checks_in_a_fraction_of_a_second(cases):
    config = {
        **cases["smoker"]["config"],
        "immutable_features": ["age"],
        "cohorts": [{"name": "Over 50", "filter": {"column": "age", "op": ">", "value": 50}}],
        "error_analysis": {"heatmap_features": ["age", "sex"]},
        "counterfactual": {
            "features_to_vary": ["bmi", "children"],
            "permitted_range": {"bmi": [20, 30]},
            "increase_only": ["children"],
            "rows": "Over 50",
        },
        "causal": {"treatment_features": ["bmi", "sex"], "heterogeneity_features": ["region"]},
        "scorecard": {
            "config": {
                "targets": [
                    "accuracy_score >= 0.5",
                    {"metric": "recall_score", "op": ">=", "value": 0.5, "cohort": "Over 50"},
                    {"metric": "accuracy_score", "cohort": "Error tree: worst leaf 1 (node 3)"},
                ],
                "fairness": {"sensitive_features": ["sex", "region"], "targets": ["selection_rate ratio >= 0.8"]},
            }
        },
    }
    started = time.monotonic()
    arguments, build = resolve_config(config, base_dir=Path("."), read_data=True)
    assert time.monotonic() - started < 1.0
    assert build["steps"] == ["error_analysis", "counterfactual", "causal"]
    assert arguments["counterfactual_rows"] == "Over 50"


# --- issue 19: bad inputs refused before any step runs, in one line, nothing written ------------


@pytest.mark.parametrize(
    "case, change, match",
    [
        pytest.param(
            "charges",
            {
                "scorecard": {
                    "config": {"fairness": {"sensitive_features": ["sex"], "targets": ["r2_score ratio >= 0.8"]}}
                }
            },
            r"r2_score ratio: r2_score can be negative",
            id="ratio-of-r2",
        ),
        pytest.param(
            "charges",
            {
                "scorecard": {
                    "config": {"fairness": {"sensitive_features": ["sex"], "targets": ["mean_prediction ratio >= 0.8"]}}
                }
            },
            r"config `scorecard`: `fairness.targets\[0\]`: mean_prediction ratio: mean_prediction can be negative "
            r"\(the target has negative values\)",
            id="ratio-of-a-signed-target",
        ),
        pytest.param(
            "smoker", {"min_group_size": 0}, r"config `min_group_size` must be an integer >= 1", id="group-size-0"
        ),
        pytest.param("smoker", {"min_group_size": -5}, r"got -5", id="group-size-negative"),
        pytest.param(
            "smoker",
            {"immutable_features": ["bmi"], "causal": {"treatment_features": ["bmi"]}},
            r"config `causal.treatment_features` names \['bmi'\], which `immutable_features` lists",
            id="immutable-treatment",
        ),
        pytest.param(
            "smoker",
            {"desired_outcome": "increse"},
            r"config `desired_outcome` must be one of \['increase', 'decrease'\] .*got 'increse'",
            id="desired-outcome-misspelt",
        ),
    ],
)
def test_bad_inputs_are_refused_in_one_line_with_nothing_written(cases, tmp_path, capsys, case, change, match):
    line = refused(tmp_path, {**cases[case]["config"], **change}, capsys)
    assert re.search(match, line), line


def test_the_mean_prediction_ratio_of_a_non_negative_target_is_accepted(cases):
    """The sign comes from the target's values: charges themselves are never negative."""
    config = {
        **cases["charges"]["config"],
        "scorecard": {
            "config": {"fairness": {"sensitive_features": ["sex"], "targets": ["mean_prediction ratio >= 0.8"]}}
        },
    }
    test = cases["charges"]["test_frame"]
    positive = test.assign(charges=test["charges"] - test["charges"].min())
    assert (positive["charges"] >= 0).all() and (test["charges"] < 0).any()
    path = Path(config["test_data"]).with_name("positive.parquet")
    positive.to_parquet(path, index=False)
    resolve_config({**config, "test_data": str(path)}, base_dir=Path("."), read_data=True)
    with pytest.raises(RAIInputError, match="mean_prediction can be negative"):
        resolve_config(config, base_dir=Path("."), read_data=True)


def test_the_command_itself_prints_one_line_and_writes_nothing(cases, tmp_path):
    """The installed `rai-audit` (a new process: no traceback, exit code, nothing written)."""
    path = write_config(tmp_path / "in", {**cases["smoker"]["config"], "desired_outcome": "increse"})
    done = subprocess.run(
        [str(Path(sys.executable).with_name("rai-audit")), "run", str(path), "--output", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "rai-audit: error: config `desired_outcome` must be one of ['increase', 'decrease'] (which way of the "
        "positive label or target is good), got 'increse'"
    ]
    assert not (tmp_path / "out").exists()


# --- what cannot be read yet, and CSV ----------------------------------------------------------


def test_data_in_object_storage_is_noted_and_the_rest_still_checked(cases, capsys):
    config = {
        **cases["smoker"]["config"],
        "train_data": "s3://bucket/train.parquet",
        "test_data": "s3://bucket/test.parquet",
    }
    arguments, _ = resolve_config(
        {**config, "sensitive_features": ["not-checked-yet"]}, base_dir=Path("."), read_data=True
    )
    assert arguments["test_data_uri"] == "s3://bucket/test.parquet"
    assert (
        "rai-audit: note: train_data and test_data are read from object storage after the download"
        in capsys.readouterr().err
    )
    with pytest.raises(RAIInputError, match=r"`causal.treatment_features` names \['bmi'\], which `immutable_features`"):
        resolve_config(
            {**config, "immutable_features": ["bmi"], "causal": {"treatment_features": ["bmi"]}},
            base_dir=Path("."),
            read_data=True,
        )


def test_csv_is_checked_from_its_header_and_first_rows(cases, tmp_path, capsys):
    """A column empty in the first 1,000 rows has no known type there: a text filter on it is
    not refused (the whole file holds text), a misspelt column still is."""
    case = cases["smoker"]
    train = case["train_frame"].assign(ward="north")
    test = pd.concat([case["test_frame"]] * 4, ignore_index=True)  # 1,352 rows
    test["ward"] = np.where(test.index < 1000, None, "north")
    for frame, name in ((train, "train.csv"), (test, "test.csv")):
        frame.to_csv(tmp_path / name, index=False)
    config = {
        **case["config"],
        "train_data": str(tmp_path / "train.csv"),
        "test_data": str(tmp_path / "test.csv"),
        "dropped_features": ["referral", "ward"],
    }
    north = [{"name": "North", "filter": {"column": "ward", "op": "==", "value": "north"}}]
    started = time.monotonic()
    resolve_config({**config, "cohorts": north}, base_dir=tmp_path, read_data=True)
    assert time.monotonic() - started < 2
    wrong = [{"name": "North", "filter": {"column": "wards", "op": "==", "value": "north"}}]
    with pytest.raises(RAIInputError, match=r"cohort 'North': column 'wards' is not a feature"):
        resolve_config({**config, "cohorts": wrong}, base_dir=tmp_path, read_data=True)
    with pytest.raises(RAIInputError, match=r"`sensitive_features` names columns that are not in the data: \['race'\]"):
        resolve_config({**config, "sensitive_features": ["race"]}, base_dir=tmp_path, read_data=True)


# --- issue 29: names the bundle reserves -------------------------------------------------------


@pytest.mark.parametrize(
    "column", ["proba_1", "proba_0", "y_true", "y_pred", "row_id", "in_sample", "class", "prediction"]
)
def test_a_feature_named_like_an_internal_column_is_refused(cases, tmp_path, capsys, column):
    """proba_1 was accepted and gather then failed writing its predictions table, with a
    hint about mixed types; class or prediction silently replaced the feature's values in the
    explainer's and the counterfactual step's tables."""
    case = cases["smoker"]
    renamed = {
        "train": case["train_frame"].rename(columns={"bmi": column}),
        "test": case["test_frame"].rename(columns={"bmi": column}),
    }
    for name, frame in renamed.items():
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
    config = {
        **case["config"],
        "train_data": str(tmp_path / "train.parquet"),
        "test_data": str(tmp_path / "test.parquet"),
    }
    line = refused(tmp_path, config, capsys)
    assert f"feature names ['{column}'] are reserved for the audit's own columns" in line
    assert "rename these columns" in line
    # The constructor alone (a KFP run, `rai-audit constructor`) refuses it too, writing nothing.
    with pytest.raises(RAIInputError, match=re.escape(f"feature names ['{column}'] are reserved")):
        run_constructor(
            case["model"],
            tmp_path / "train.parquet",
            tmp_path / "test.parquet",
            tmp_path / "artifact",
            options=ConstructorOptions(target_column="smoker", task_type="binary_classification", allow_pickle=True),
        )
    assert not (tmp_path / "artifact").exists()


@pytest.mark.parametrize(
    "name", ["All data", "sex = female", "sex = male", "sex = anything", "Error tree: worst leaf 1 (node 3)"]
)
def test_a_cohort_named_like_a_built_in_view_is_refused(cases, tmp_path, capsys, name):
    """A user cohort named `All data` or `sex = female` took the built-in view's place: the
    page looks views up by name, so the cohort's figures were shown as those of all the data."""
    case = cases["smoker"]
    cohorts = [{"name": name, "filter": {"column": "age", "op": ">", "value": 40}}]
    line = refused(tmp_path, {**case["config"], "cohorts": cohorts}, capsys)
    assert f"cohort name {name!r} is reserved" in line
    with pytest.raises(RAIInputError, match=re.escape(f"cohort name {name!r} is reserved")):
        run_constructor(
            case["model"],
            case["train"],
            case["test"],
            tmp_path / "artifact",
            options=ConstructorOptions(
                target_column="smoker",
                task_type="binary_classification",
                sensitive_features=["sex"],
                cohorts=cohorts,
                allow_pickle=True,
            ),
        )
    assert not (tmp_path / "artifact").exists()


def test_other_names_stay_free(cases, tmp_path):
    """Only the built-in views' names are reserved: near ones, and `<feature> = ...` of a
    feature that is not sensitive, are a user's to take."""
    case = cases["smoker"]
    cohorts = [
        {"name": n, "filter": {"column": "age", "op": ">", "value": 40}}
        for n in ("All data over 40", "Females", "region = southeast", "sex=female")
    ]
    run_constructor(
        case["model"],
        case["train"],
        case["test"],
        tmp_path / "artifact",
        options=ConstructorOptions(
            target_column="smoker",
            task_type="binary_classification",
            sensitive_features=["sex"],
            cohorts=cohorts,
            allow_pickle=True,
        ),
    )
    meta = json.loads((tmp_path / "artifact" / A.META_FILE).read_text())
    assert meta["cohort_sizes"] == {c["name"]: int((case["test_frame"]["age"] > 40).sum()) for c in cohorts}


# --- issue 29: a cohort `value: null` through `rai-audit run` ------------------------------------


def test_a_cohort_with_a_null_value_runs_through_the_pipeline(cases, tmp_path, capsys):
    """KFP parameters cannot hold null: `rai-audit run` crashed in KFP's parameter check (the
    constructor alone accepted it). The cohort now goes as its JSON text and selects exactly
    the rows pandas finds missing."""
    case = cases["smoker"]
    cohorts = [
        {"name": "No referral", "filter": {"column": "referral", "op": "==", "value": None}},
        {"name": "Referred", "filter": {"column": "referral", "op": "!=", "value": None}},
        {"name": "Over 50", "filter": {"column": "age", "op": ">", "value": 50}},
    ]
    arguments, _ = load_config(write_config(tmp_path / "in", {**case["config"], "cohorts": cohorts}))
    assert arguments["cohorts"][2] == cohorts[2] and json.loads(arguments["cohorts"][0]) == cohorts[0]
    path = write_config(tmp_path / "in", {**case["config"], "cohorts": cohorts, "sample_size": 100})
    assert main(["run", str(path), "--output", str(tmp_path / "out")]) == 0
    line = next(text for text in capsys.readouterr().out.splitlines() if text.startswith("dashboard bundle: "))
    doc = json.loads((Path(line.removeprefix("dashboard bundle: ")) / A.INSIGHTS_JSON_FILE).read_text())
    counts = {c["name"]: c["count"] for c in doc["model_overview"]["cohorts"]}
    test = case["test_frame"]
    assert counts == {
        "No referral": int(test["referral"].isna().sum()),
        "Referred": int(test["referral"].notna().sum()),
        "Over 50": int((test["age"] > 50).sum()),
    }
    assert 0 < counts["No referral"] < len(test)
