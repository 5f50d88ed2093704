"""Every parameter of Azure ML's Responsible AI components, in each value form, read by the
audit config reader (rai_audit.azure): the pipeline argument it becomes, or the note saying
why it has none. Also Azure's scorecard metric names and cohort columns, computed against
numpy/pandas on the same rows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from rai_audit.azure import AZURE_PARAMETERS, FORMS, Context, option_for, read_config, read_options
from rai_audit.config import resolve_config
from rai_audit.core import RAIInputError
from rai_audit.core.cohorts import CLASSIFICATION_OUTCOMES, filter_mask, load_cohorts
from rai_audit.core.metrics import metric_functions
from rai_audit.core.scorecard_config import parse_scorecard_config
from rai_audit.specs import ANALYSIS_STEPS, step_options
from support import shared_dataset

ADULT_COLUMNS = ["age", "workclass", "education-num", "sex", "race", "hours-per-week", "income"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """A small Adult (labels `<=50K`, `>50K`) and insurance (regression) pair of files, and a
    model file (the config reader checks that it exists; it does not load it)."""
    folder = tmp_path_factory.mktemp("azure_forms")
    adult = shared_dataset("adult_train.parquet")[ADULT_COLUMNS].fillna("?")
    adult.iloc[:200].to_parquet(folder / "adult_train.parquet", index=False)
    adult.iloc[200:300].to_parquet(folder / "adult_test.parquet", index=False)
    insurance = shared_dataset("insurance.parquet")
    insurance.iloc[:200].to_parquet(folder / "insurance_train.parquet", index=False)
    insurance.iloc[200:300].to_parquet(folder / "insurance_test.parquet", index=False)
    (folder / "model.skops").write_bytes(b"not read")
    return folder


def adult_config(**keys: Any) -> dict[str, Any]:
    return {
        "model": "model.skops",
        "train_data": "adult_train.parquet",
        "test_data": "adult_test.parquet",
        "target_column": "income",
        "task_type": "classification",
        **keys,
    }


def insurance_config(**keys: Any) -> dict[str, Any]:
    return {
        "model": "model.skops",
        "train_data": "insurance_train.parquet",
        "test_data": "insurance_test.parquet",
        "target_column": "charges",
        "task_type": "regression",
        **keys,
    }


def resolved(files: Path, config: dict[str, Any], capsys) -> tuple[dict[str, Any], str]:
    """The pipeline arguments of a config (checked against the files' columns) and its notes."""
    capsys.readouterr()
    args, build = resolve_config(config, base_dir=files, read_data=True)
    return {**args, "_steps": build["steps"]}, capsys.readouterr().err


CAUSAL = {"treatment_features": '["age"]'}
PARAMETER_DEFAULTS = {
    o.parameter_name(): o.parameter_default for step in ("constructor", *ANALYSIS_STEPS) for o in step_options(step)
}
# (case id, config, pipeline argument, its value, a note's words or None)
TABLE = [
    # constructor (top-level keys)
    ("target_column_name", adult_config(target_column=None, target_column_name="income"), "target_column", "income",
     None),
    ("task_type", adult_config(task_type="classification"), "task_type", "classification", None),
    ("categorical_column_names", adult_config(categorical_column_names='["workclass", "sex", "race"]'),
     "categorical_features", ["workclass", "sex", "race"], None),
    ("categorical_column_names-empty", adult_config(categorical_column_names="[]"), "categorical_features", [], None),
    ("classes", adult_config(classes='["<=50K", ">50K"]'), "classes", ["<=50K", ">50K"], None),
    ("classes-empty", adult_config(classes="[]"), "classes", [], None),
    ("maximum_rows_for_test_dataset", adult_config(maximum_rows_for_test_dataset=50), "sample_size", 50,
     "the test data has 100 rows, more than `maximum_rows_for_test_dataset` 50"),
    ("feature_metadata-dropped", adult_config(feature_metadata='{"dropped_features": ["race"]}'), "dropped_features",
     ["race"], None),
    ("feature_metadata-identity", adult_config(feature_metadata='{"identity_feature_name": "age"}'),
     "dropped_features", [], "`identity_feature_name` 'age': not mapped"),
    ("feature_metadata-empty", adult_config(feature_metadata="{}"), "dropped_features", [], None),
    ("title", adult_config(title="Adult audit"), "target_column", "income", None),
    ("use_model_dependency", adult_config(use_model_dependency=True), "target_column", "income",
     "`use_model_dependency` True: not mapped"),
    # error analysis
    ("max_depth", adult_config(error_analysis={"max_depth": 4}), "error_analysis_max_depth", 4, None),
    ("num_leaves", adult_config(error_analysis={"num_leaves": 8}), "error_analysis_num_leaves", 8, None),
    ("min_child_samples", adult_config(error_analysis={"min_child_samples": 5}),
     "error_analysis_min_child_samples", 5, None),
    ("filter_features", adult_config(error_analysis={"filter_features": '["age", "sex"]'}),
     "error_analysis_heatmap_features", ["age", "sex"], None),
    ("filter_features-null", adult_config(error_analysis={"filter_features": "null"}),
     "error_analysis_heatmap_features", [], None),
    ("filter_features-empty", adult_config(error_analysis={"filter_features": "[]"}),
     "error_analysis_heatmap_features", [], None),
    # explanation
    ("comment", adult_config(explainer={"comment": "first look"}), "_steps", ["explainer"],
     "`comment` 'first look': not mapped"),
    # counterfactual
    ("total_CFs", adult_config(counterfactual={"total_CFs": 4}), "counterfactual_total_CFs", 4, None),
    ("method-genetic", adult_config(counterfactual={"method": "genetic"}), "counterfactual_engine", "dice",
     "runs dice-ml (`engine: dice`)"),
    ("method-random", adult_config(counterfactual={"method": "Random"}), "counterfactual_method", "random", None),
    ("desired_class-opposite", adult_config(counterfactual={"desired_class": "opposite"}),
     "counterfactual_desired_class", "opposite", None),
    ("desired_class-index-0", adult_config(counterfactual={"desired_class": 0}), "counterfactual_desired_class",
     "<=50K", None),
    ("desired_class-index-1", adult_config(counterfactual={"desired_class": 1}), "counterfactual_desired_class",
     ">50K", None),
    ("desired_class-label", adult_config(counterfactual={"desired_class": ">50K"}), "counterfactual_desired_class",
     ">50K", None),
    ("desired_range", insurance_config(counterfactual={"desired_range": "[1000, 5000]"}),
     "counterfactual_desired_range", [1000, 5000], None),
    ("permitted_range", adult_config(counterfactual={"permitted_range": '{"age": [20, 60]}'}),
     "counterfactual_permitted_range", {"age": [20, 60]}, None),
    ("features_to_vary-all", adult_config(sensitive_features=["sex"], counterfactual={"features_to_vary": "all"}),
     "counterfactual_features_to_vary", [], "rai-audit holds the sensitive and immutable features ['sex'] fixed"),
    ("features_to_vary-list", adult_config(counterfactual={"features_to_vary": '["age", "hours-per-week"]'}),
     "counterfactual_features_to_vary", ["age", "hours-per-week"], None),
    ("feature_importance", adult_config(counterfactual={"feature_importance": False}), "counterfactual_total_CFs", 10,
     "`feature_importance` False: not mapped"),
    # causal
    ("treatment_features", adult_config(causal=CAUSAL), "causal_treatment_features", ["age"], None),
    ("heterogeneity_features-null", adult_config(causal={**CAUSAL, "heterogeneity_features": "null"}),
     "causal_heterogeneity_features", "null", None),
    ("heterogeneity_features-empty", adult_config(causal={**CAUSAL, "heterogeneity_features": "[]"}),
     "causal_heterogeneity_features", "[]", None),
    ("heterogeneity_features-list", adult_config(causal={**CAUSAL, "heterogeneity_features": '["sex"]'}),
     "causal_heterogeneity_features", '["sex"]', None),
    ("nuisance_model", adult_config(causal={**CAUSAL, "nuisance_model": "AutoML"}), "causal_nuisance_model",
     "automl", None),
    ("heterogeneity_model", adult_config(causal={**CAUSAL, "heterogeneity_model": "forest"}),
     "causal_heterogeneity_model", "forest", None),
    ("alpha", adult_config(causal={**CAUSAL, "alpha": 0.1}), "causal_alpha", 0.1, None),
    ("upper_bound_on_cat_expansion", adult_config(causal={**CAUSAL, "upper_bound_on_cat_expansion": 20}),
     "causal_upper_bound_on_cat_expansion", 20, None),
    ("treatment_cost-zero", adult_config(causal={**CAUSAL, "treatment_cost": "0"}), "causal_treatment_cost", [],
     None),
    ("treatment_cost-list", adult_config(causal={**CAUSAL, "treatment_cost": "[1.5]"}), "causal_treatment_cost",
     [1.5], None),
    ("min_tree_leaf_samples", adult_config(causal={**CAUSAL, "min_tree_leaf_samples": 3}),
     "causal_min_tree_leaf_samples", 3, None),
    ("max_tree_depth", adult_config(causal={**CAUSAL, "max_tree_depth": 3}), "causal_max_tree_depth", 3, None),
    ("skip_cat_limit_checks", adult_config(causal={**CAUSAL, "skip_cat_limit_checks": "True"}),
     "causal_skip_cat_limit_checks", True, None),
    ("categories-auto", adult_config(causal={"treatment_features": '["sex"]', "categories": "auto"}),
     "causal_categories", {}, None),
    ("categories-list", adult_config(categorical_column_names='["workclass", "sex", "race"]',
                                     causal={"treatment_features": '["sex"]',
                                             "categories": '["auto", ["Male", "Female"], "auto"]'}),
     "causal_categories", {"sex": ["Male", "Female"]}, None),
    ("n_jobs", adult_config(causal={**CAUSAL, "n_jobs": 1}), "causal_n_jobs", 1, None),
    ("verbose", adult_config(causal={**CAUSAL, "verbose": 2}), "causal_n_jobs", -1, "`verbose` 2: not mapped"),
    ("random_state", adult_config(causal={**CAUSAL, "random_state": 7}), "random_state", 7, None),
    ("random_state-None", adult_config(causal={**CAUSAL, "random_state": "None"}), "random_state", 0,
     "None (unseeded): rai-audit seeds every step"),
]  # fmt: skip


@pytest.mark.parametrize(("config", "argument", "expected", "note"), [c[1:] for c in TABLE], ids=[c[0] for c in TABLE])
def test_azure_parameter_becomes_the_option(files, capsys, config, argument, expected, note):
    args, notes = resolved(files, config, capsys)
    # An option left at its default is no argument of the built pipeline: its parameter default.
    assert args.get(argument, PARAMETER_DEFAULTS.get(argument)) == expected
    if note is None:
        assert "not mapped" not in notes
    else:
        assert note in notes, notes


def test_the_table_has_every_azure_parameter():
    """Each component parameter that is not an input has a row above (its name starts the id)."""
    ids = {c[0].split("-")[0] for c in TABLE}
    parameters = {p.name for step in AZURE_PARAMETERS.values() for p in step if p.form != "input"}
    assert parameters <= ids, sorted(parameters - ids)


def test_every_mapped_parameter_names_an_option_that_names_it_back():
    """The specs' azure names and rai_audit.azure's table agree: one definition each side."""
    for step, parameters in AZURE_PARAMETERS.items():
        for p in parameters:
            assert p.form in FORMS or p.form in ("input", "ignored"), (step, p.name)
            option = option_for(step, p.name) if step in ("constructor", *ANALYSIS_STEPS) else None
            mapped = p.form not in ("input", "ignored", "feature_metadata")
            assert (option is not None) == mapped, (step, p.name)
    for step in ("constructor", *ANALYSIS_STEPS):
        for o in step_options(step):
            for name in o.azure:
                assert any(p.name == name for p in AZURE_PARAMETERS[step]), (step, o.name, name)


def test_title_is_the_audit_name(files):
    config, _ = read_config(adult_config(title="Adult audit"), base_dir=files)
    assert config["name"] == "Adult audit" and "title" not in config


def test_scorecard_section_takes_azure_files(files, capsys, tmp_path):
    """`pdf_generation_config` is the scorecard's config; `predefined_cohorts_json` adds cohorts."""
    (files / "pdf_gen.json").write_text(
        json.dumps({"Model": {"ModelName": "m", "ModelType": "Classification"}, "Metrics": {"error_rate": {}}})
    )
    azure_cohorts = [{"name": "Young", "cohort_filter_list": [{"method": "less", "arg": [30], "column": "age"}]}]
    (files / "cohorts_azure.json").write_text(json.dumps(azure_cohorts))
    config = adult_config(
        cohorts=[{"name": "Women", "filter": {"column": "sex", "op": "==", "value": "Female"}}],
        scorecard={"pdf_generation_config": "pdf_gen.json", "predefined_cohorts_json": "cohorts_azure.json"},
    )
    args, _ = resolved(files, config, capsys)
    assert [t["metric"] for t in args["scorecard_config"]["targets"]] == ["error_rate"]
    assert [c["name"] for c in args["cohorts"]] == ["Women", "Young"]


# --- refused, in one line naming the key ---------------------------------------------------------

REFUSED = [
    ("both-names", adult_config(error_analysis={"filter_features": '["age"]', "heatmap_features": ["sex"]}),
     r"config `error_analysis` gives both `heatmap_features` and `filter_features`, two names of one option"),
    ("not-json", adult_config(causal={"treatment_features": '["age"'}),
     r"config `causal` `treatment_features`: '\[\"age\"' is not JSON text"),
    ("forecasting", adult_config(task_type="forecasting"), r"`task_type`: forecasting has no rai-audit equivalent"),
    ("index-out-of-range", adult_config(counterfactual={"desired_class": 2}),
     r"`desired_class`: class index 2 is out of range for the classes \['<=50K', '>50K'\]"),
    ("per-row-costs", adult_config(causal={**CAUSAL, "treatment_cost": "[[1, 2]]"}), r"per-row treatment costs"),
    ("categories-count", adult_config(categorical_column_names='["sex"]',
                                      causal={"treatment_features": '["sex"]', "categories": '["auto", "auto"]'}),
     r"one entry per categorical column \(categorical_column_names, 1\); got 2 entries"),
    ("seed-twice", adult_config(random_state=1, causal={**CAUSAL, "random_state": 2}),
     r"config `causal.random_state` 2 differs from the audit's `random_state` 1"),
    ("feature-metadata-key", adult_config(feature_metadata='{"dropped": ["race"]}'),
     r"`feature_metadata` has unknown keys \['dropped'\]"),
]  # fmt: skip


@pytest.mark.parametrize(("config", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_bad_azure_form_is_refused(files, config, message):
    with pytest.raises(RAIInputError, match=message) as raised:
        resolve_config(config, base_dir=files, read_data=True)
    assert "\n" not in str(raised.value)


def test_class_index_that_is_also_another_class_label_is_refused():
    """Labels 1 and 2: index 1 is class 2, and 1 is a label too: which is meant is unknowable."""
    context = Context(classes=lambda: [1, 2])
    with pytest.raises(RAIInputError, match=r"1 is Azure's index of class 2 but also the label of another class"):
        read_options("counterfactual", {"desired_class": 1}, where="config `counterfactual`", context=context)
    read = read_options("counterfactual", {"desired_class": 2}, where="c", context=context)
    assert read.options["desired_class"] == 2  # a label, and no class has index 2
    same = Context(classes=lambda: [0, 1, 2])
    assert read_options("counterfactual", {"desired_class": 1}, where="c", context=same).options["desired_class"] == 1


# --- Azure's scorecard metric names and cohort columns -----------------------------------------


def test_error_rate_and_median_absolute_error_as_numpy_computes_them():
    rng = np.random.default_rng(0)
    labels = rng.choice(["a", "b", "c"], 200)
    predicted = np.where(rng.random(200) < 0.3, rng.choice(["a", "b", "c"], 200), labels)
    error_rate = metric_functions("multiclass_classification", classes=["a", "b", "c"])["error_rate"]
    assert error_rate(labels, predicted) == pytest.approx(np.mean(labels != predicted))
    y, p = rng.normal(size=101), rng.normal(size=101)
    median = metric_functions("regression")["median_absolute_error"]
    assert median(y, p) == pytest.approx(np.sort(np.abs(y - p))[50])


def test_azure_scorecard_metric_names_parse():
    config = {
        "Model": {"ModelName": "m", "ModelType": "Regression"},
        "Metrics": {"median_absolute_error": {"threshold": "<=2"}, "r2_score": {}},
        "Fairness": {"metric": ["median_absolute_error"], "sensitive_features": ["sex"],
                     "fairness_evaluation_kind": "difference"},
    }  # fmt: skip
    parsed = parse_scorecard_config(config)
    assert [(t["metric"], t["op"], t["value"]) for t in parsed["targets"]] == [
        ("median_absolute_error", "<=", 2.0),
        ("r2_score", None, None),
    ]
    spelled = parse_scorecard_config({"Model": {}, "Fairness": {"metric": ["Selection_rate", "r2_Score"]}})
    assert spelled["fairness"]["metrics"] == ["selection_rate", "r2_score"]


def _azure(column: str, method: str, arg: list[Any], name: str = "c") -> list[dict[str, Any]]:
    return [{"name": name, "cohort_filter_list": [{"method": method, "arg": arg, "column": column}]}]


FRAME = pd.DataFrame(
    {
        "age": [20, 30, 40, 50, 60, 70],
        "y_true": ["no", "yes", "yes", "no", "no", "yes"],
        "y_pred": ["no", "yes", "no", "yes", "no", "no"],
    }
)


@pytest.mark.parametrize(
    ("cohort", "expected"),
    [
        (_azure("Classification Outcome", "includes", ["False negative"]),
         (FRAME.y_true == "yes") & (FRAME.y_pred == "no")),
        (_azure("Classification Outcome", "includes", ["True positive", "True negative"]),
         FRAME.y_true == FRAME.y_pred),
        (_azure("Classification Outcome", "excludes", ["False positive"]),
         ~((FRAME.y_true == "no") & (FRAME.y_pred == "yes"))),
        (_azure("Classification Outcome", "equal", ["True negative"]), (FRAME.y_true == "no") & (FRAME.y_pred == "no")),
        (_azure("Index", "less", [2]), pd.Series(np.arange(6) < 2)),
        (_azure("Index", "in the range of", [1, 3]), pd.Series((np.arange(6) >= 1) & (np.arange(6) <= 3))),
        ([{"name": "Everyone", "cohort_filter_list": []}], pd.Series(np.ones(6, bool))),
    ],
    ids=["fn", "correct", "not-fp", "tn", "index-less", "index-range", "empty-list"],
)  # fmt: skip
def test_azure_cohort_columns_select_what_pandas_selects(cohort, expected):
    """`yes` is the positive class: the second of the sorted classes, as in Azure's dashboard."""
    [loaded] = load_cohorts(cohort)
    assert (filter_mask(loaded["filter"], FRAME) == expected.to_numpy()).all()


def test_azure_all_data_cohort_is_the_built_in_view():
    assert load_cohorts([{"name": "All data", "cohort_filter_list": []}, *_azure("Index", "less", [2])]) == [
        {"name": "c", "filter": {"column": "row_id", "op": "<", "value": 2}}
    ]


def test_classification_outcome_refused_off_binary_and_for_unknown_outcomes():
    from rai_audit.core.cohorts import validate_cohorts

    three = FRAME.assign(y_true=["a", "b", "c", "a", "b", "c"])
    with pytest.raises(RAIInputError, match="defined for binary classification"):
        validate_cohorts(load_cohorts(_azure("Classification Outcome", "includes", ["True positive"])), three)
    with pytest.raises(RAIInputError, match=re.escape(f"must be one of {list(CLASSIFICATION_OUTCOMES)}")):
        validate_cohorts(load_cohorts(_azure("Classification Outcome", "includes", ["Right"])), FRAME)


def test_step_command_lines_take_azure_names():
    """A step run alone takes Azure's parameter names as flags (`--filter_features`), with the
    value as its command line passes it (JSON text)."""
    import argparse

    from rai_audit.steps._cli import add_options, options_from_args

    parser = argparse.ArgumentParser()
    add_options(parser, "error_analysis")
    args = vars(parser.parse_args(["--filter_features", '["age", "sex"]', "--max_depth", "4"]))
    options = options_from_args("error_analysis", args)
    assert (options.heatmap_features, options.max_depth) == (["age", "sex"], 4)
    parser = argparse.ArgumentParser()
    add_options(parser, "constructor")
    args = vars(parser.parse_args(["--target_column_name", "income", "--task-type", "classification",
                                   "--maximum_rows_for_test_dataset", "500"]))  # fmt: skip
    options = options_from_args("constructor", args)
    assert (options.target_column, options.sample_size) == ("income", 500)
