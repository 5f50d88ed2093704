"""`rai-audit from-azure`: every file of ../shared/azure-examples converted or read as it is.

The five pipeline jobs Azure ML runs for real are converted, their placeholders filled with
``--set`` (a model trained here, saved with skops, and data with the columns each expects:
UCI Adult from ../shared/datasets renamed as the RAI-vNext test data names its columns,
scikit-learn's wine data, and Boston housing, Kaggle housing and the synthetic programmers
data built here), and run end to end with `rai-audit run`, three at a time, to
keep within the test time. What each run reports is checked against pandas and scikit-learn
on the same rows. The negative-test pipeline (a scorecard config naming a column the data
lacks) is refused by `rai-audit run` in one line before any step runs. The two component
specs are read as they are: their parameters, types and defaults are the ones rai_audit.azure
reads. The scorecard configs and the cohort file are read as they are, and used by the
pipelines that name them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import yaml
from sklearn import metrics as skm
from sklearn.datasets import load_wine
from sklearn.linear_model import LinearRegression, LogisticRegression

from rai_audit.azure import AZURE_PARAMETERS, COMPONENT_STEPS, PLACEHOLDER
from rai_audit.cli import main
from rai_audit.core.cohorts import load_cohorts
from rai_audit.core.scorecard_config import parse_scorecard_config
from support import AZURE_EXAMPLES, encoded_model, shared_dataset

RAI_AUDIT = Path(sys.executable).with_name("rai-audit")
# Small runs: each step's own cost is small next to starting its task; the sample keeps the
# per-row steps (explanations, counterfactuals, causal local effects) short.
SMALL = {"sample_size": 40, "causal.train_sample_size": 200, "causal.n_jobs": 1, "scorecard.bootstrap": 20}
SEED = 0


def example(name: str) -> Path:
    return AZURE_EXAMPLES / name


def small(case: Case) -> dict[str, Any]:
    """SMALL's keys of the steps the case's pipeline has (only wine's has no causal job)."""
    has_causal = "causal" in example(case.pipeline).read_text()
    return {k: v for k, v in SMALL.items() if has_causal or not k.startswith("causal.")}


# --- data with the columns each pipeline expects, and a model trained on it ----------------------


@dataclass
class Data:
    train: pd.DataFrame
    test: pd.DataFrame
    target: str
    categorical: list[str]
    classifier: bool
    extra: dict[str, Any] = field(default_factory=dict)


BOSTON_NUMERIC = ["CRIM", "ZN", "INDUS", "NOX", "RM", "AGE", "DIS", "TAX", "PTRATIO", "B", "LSTAT"]


def boston_like(n: int = 360) -> Data:
    """Boston housing's columns (the assets' pipeline: target `y`, CHAS and RAD categorical) with
    values in their ranges; TAX on both sides of the cohorts' 300."""
    rng = np.random.default_rng(SEED)
    frame = pd.DataFrame(
        {
            "CRIM": rng.gamma(0.5, 7.0, n).round(3),
            "ZN": rng.choice([0.0, 12.5, 25.0, 80.0], n),
            "INDUS": rng.uniform(0.5, 27.7, n).round(2),
            "CHAS": rng.choice([0, 1], n, p=[0.93, 0.07]),
            "NOX": rng.uniform(0.39, 0.87, n).round(3),
            "RM": rng.normal(6.3, 0.7, n).round(3),
            "AGE": rng.uniform(3, 100, n).round(1),
            "DIS": rng.uniform(1.1, 12.1, n).round(3),
            "RAD": rng.choice([1, 2, 3, 4, 5, 8, 24], n),
            "TAX": rng.integers(187, 712, n),
            "PTRATIO": rng.uniform(12.6, 22.0, n).round(1),
            "B": rng.uniform(0.3, 396.9, n).round(2),
            "LSTAT": rng.uniform(1.7, 38.0, n).round(2),
        }
    )
    frame["y"] = (
        22 + 6 * (frame["RM"] - 6.3) - 0.4 * (frame["LSTAT"] - 12) - 8 * (frame["NOX"] - 0.55) + rng.normal(0, 2, n)
    ).clip(5, 50)
    return Data(frame.iloc[:240], frame.iloc[240:], "y", ["CHAS", "RAD"], classifier=False)


HOUSING_NUMERIC = [  # the housing pipeline's continuous_features, as it spells them
    "LotFrontage", "LotArea", "OverallQual", "OverallCond", "YearBuilt", "YearRemodAdd", "BsmtUnfSF",
    "TotalBsmtSF", "Ce0tralAir", "1stFlrSF", "2ndFlrSF", "LowQualFinSF", "GrLivArea", "BsmtFullBath",
    "BsmtHalfBath", "FullBath", "HalfBath", "BedroomAbvGr", "KitchenAbvGr", "TotRmsAbvGrd", "Fireplaces",
    "GarageYrBlt", "GarageCars", "GarageArea", "PavedDrive", "WoodDeckSF", "OpenPorchSF", "EnclosedPorch",
    "3SsnPorch", "ScreenPorch", "PoolArea", "YrSold",
]  # fmt: skip


def housing_like(n: int = 360) -> Data:
    """Kaggle housing's columns with the pipeline's `classes` as the labels of
    Sold_HigherThan_Median."""
    rng = np.random.default_rng(SEED + 1)
    frame = pd.DataFrame({c: rng.integers(0, 10, n).astype(float) for c in HOUSING_NUMERIC})
    frame["OverallQual"] = rng.integers(1, 11, n)
    frame["OverallCond"] = rng.integers(1, 10, n)
    frame["GrLivArea"] = rng.normal(1500, 400, n).round()
    frame["GarageCars"] = rng.integers(0, 4, n)
    frame["Fireplaces"] = rng.integers(0, 3, n)
    frame["ScreenPorch"] = rng.choice([0.0, 0.0, 0.0, 120.0, 180.0], n)
    score = 0.8 * (frame["OverallQual"] - 5.5) + 0.003 * (frame["GrLivArea"] - 1500) + 0.5 * frame["GarageCars"]
    high = score + rng.normal(0, 1, n) > 0.75
    frame["Sold_HigherThan_Median"] = np.where(high, "More than median", "Less than median")
    return Data(frame.iloc[:240], frame.iloc[240:], "Sold_HigherThan_Median", [], classifier=True)


PROGRAMMER_CATEGORICAL = ["location", "style", "job title", "OS", "Employer", "IDE", "Programming language"]


def programmers_like(n: int = 360) -> Data:
    """The programmers data's columns (azureml-examples' synthetic set: target `score`)."""
    rng = np.random.default_rng(SEED + 2)
    values = {
        "location": ["Antarctica", "Europe", "Asia", "America"],
        "style": ["tabs", "spaces"],
        "job title": ["engineer", "manager", "principal engineer"],
        "OS": ["Linux", "MacOS", "Windows"],
        "Employer": ["Microsoft", "Google", "Amazon", "Facebook"],
        "IDE": ["emacs", "vim", "VSCode", "pycharm"],
        "Programming language": ["Python", "C#", "Java", "Rust"],
    }
    frame = pd.DataFrame({c: rng.choice(v, n) for c, v in values.items()})
    frame["YOE"] = rng.integers(0, 20, n)
    frame["Number of github repos contributed to"] = rng.integers(0, 30, n)
    frame["age"] = frame["YOE"] + rng.integers(21, 30, n)
    frame["score"] = (
        2 + 0.3 * frame["YOE"] + 0.1 * frame["Number of github repos contributed to"]
        + np.where(frame["style"] == "spaces", 1.0, 0.0) + rng.normal(0, 1, n)
    ).round(2)  # fmt: skip
    return Data(frame.iloc[:240], frame.iloc[240:], "score", PROGRAMMER_CATEGORICAL, classifier=False)


# UCI Adult's columns as the RAI-vNext test data names them (the pipeline's names).
ADULT_NAMES = {
    "age": "Age",
    "workclass": "Workclass",
    "education-num": "Education-Num",
    "marital-status": "Marital Status",
    "occupation": "Occupation",
    "race": "Race",
    "sex": "Sex",
    "capital-gain": "Capital Gain",
    "capital-loss": "Capital Loss",
    "hours-per-week": "Hours per week",
    "native-country": "Country",
    "income": "income",
}
ADULT_CATEGORICAL = ["Race", "Sex", "Workclass", "Marital Status", "Country", "Occupation"]  # the job's


def adult_renamed() -> Data:
    """UCI Adult (../shared/datasets), rows sampled, missing values as "?" (Azure's components
    refuse NaN), columns renamed as the pipeline names them."""

    def prepared(name: str, rows: int) -> pd.DataFrame:
        frame = shared_dataset(name).sample(rows, random_state=SEED).reset_index(drop=True)
        return frame[list(ADULT_NAMES)].rename(columns=ADULT_NAMES).fillna("?")

    return Data(prepared("adult_train.parquet", 400), prepared("adult_test.parquet", 400), "income",
                ADULT_CATEGORICAL, classifier=True)  # fmt: skip


def wine() -> Data:
    """scikit-learn's wine data (three cultivars), target `class` as the RAI-vNext test names it."""
    frame = load_wine(as_frame=True).frame.rename(columns={"target": "class"})
    shuffled = frame.sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    return Data(shuffled.iloc[:118], shuffled.iloc[118:], "class", [], classifier=True)


def write_case(data: Data, folder: Path, *, dropped: tuple[str, ...] = ()) -> dict[str, Path]:
    """The train/test Parquet files and a model (skops) trained on the train rows."""
    folder.mkdir(parents=True, exist_ok=True)
    features = [c for c in data.train.columns if c != data.target and c not in dropped]
    categorical = [c for c in data.categorical if c in features]
    numeric = [c for c in features if c not in categorical]
    estimator = LogisticRegression(max_iter=2000) if data.classifier else LinearRegression()
    model = encoded_model(categorical, numeric, estimator)
    model.fit(data.train[features], data.train[data.target])
    paths = {"model": folder / "model.skops", "train": folder / "train.parquet", "test": folder / "test.parquet"}
    sio.dump(model, paths["model"])
    data.train.to_parquet(paths["train"], index=False)
    data.test.to_parquet(paths["test"], index=False)
    return paths


# --- the pipelines, converted and run ------------------------------------------------------------


@dataclass
class Case:
    pipeline: str
    data: Callable[[], Data]  # builds the data when the run is prepared
    pdf_config: str | None = None
    cohorts: str | None = None
    dropped: tuple[str, ...] = ()


CASES = {
    "boston": Case(
        "azureml-assets__boston__pipeline_boston_analyze.yml",
        boston_like,
        "azureml-assets__boston__pdf_gen.json",
        "azureml-assets__boston__cohorts.json",
    ),
    "housing": Case(
        "azureml-examples__housing-classification__pipeline.yml",
        housing_like,
        "azureml-examples__housing-classification__pdf_gen.json",
    ),
    "programmers": Case(
        "azureml-examples__programmer-regression__pipeline.yml",
        programmers_like,
        "azureml-examples__programmer-regression__pdf_gen.json",
    ),
    "adult": Case(
        "rai-vnext-preview__adult__pipeline_adult_analyse.yaml",
        adult_renamed,
        "rai-vnext-preview__adult__pdf_gen.json",
        dropped=("Race",),
    ),
    "wine": Case("rai-vnext-preview__wine__pipeline_wine_analyse.yaml", wine, "rai-vnext-preview__wine__pdf_gen.json"),
}


def from_azure(case: Case, folder: Path, paths: dict[str, Path], *extra: str) -> Path:
    """`rai-audit from-azure` on the case's pipeline, its files given, the inputs set."""
    output = folder / "audit.yaml"
    argv = ["from-azure", str(example(case.pipeline)), "--output", str(output)]
    if case.pdf_config:
        argv += ["--pdf-config", str(example(case.pdf_config))]
    if case.cohorts:
        argv += ["--cohorts", str(example(case.cohorts))]
    sets = {"model": paths["model"], "train_data": paths["train"], "test_data": paths["test"], **small(case)}
    argv += [a for key, value in sets.items() for a in ("--set", f"{key}={value}")]
    assert main([*argv, *extra]) == 0
    return output


@dataclass
class Run:
    data: Data
    paths: dict[str, Path]
    config: dict[str, Any]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    run_dir: Path | None

    def json(self, task: str, name: str) -> dict[str, Any]:
        assert self.run_dir is not None, self.stderr
        found = sorted(self.run_dir.glob(f"{task}/*/{name}"))
        assert found, f"no {task}/*/{name} in {self.run_dir}"
        return json.loads(found[0].read_text())


def _run(config: Path, output: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    # One OpenMP/BLAS thread per process: two runs share two cores.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(
        [str(RAI_AUDIT), "run", str(config), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    return done, time.monotonic() - started


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Iterator[dict[str, Future[Run]]]:
    """Every pipeline converted here, then run with `rai-audit run` three at a time: a run's tasks
    are subprocesses that spend much of their time starting, so three runs keep two cores busy
    (this file and test_azure_parameters.py: 96 s with three, 142 s with two, on a shared 2-core machine)."""
    root = tmp_path_factory.mktemp("from_azure")
    pool = ThreadPoolExecutor(max_workers=3)
    futures: dict[str, Future[Run]] = {}
    for name, case in CASES.items():
        folder = root / name
        data = case.data()
        paths = write_case(data, folder, dropped=case.dropped)
        config_path = from_azure(case, folder, paths)
        config = yaml.safe_load(config_path.read_text())

        def run(data=data, paths=paths, config=config, config_path=config_path, folder=folder) -> Run:
            done, seconds = _run(config_path, folder / "out")
            run_dirs = sorted((folder / "out" / "pipeline_root").glob("rai-audit-*"))
            return Run(data, paths, config, done.returncode, done.stdout, done.stderr, seconds,
                       run_dirs[-1] if run_dirs else None)  # fmt: skip

        futures[name] = pool.submit(run)
    yield futures
    pool.shutdown(wait=True)


def test_every_pipeline_converts_and_its_run_starts(runs):
    """The five jobs convert (their runs go on in the background while the tests below run);
    what each converted config says is checked with its run, at the end of this file."""
    assert set(runs) == set(CASES)


def test_wrong_features_pipeline_is_refused_before_any_step(tmp_path, capsys):
    """RAI-vNext's negative test: constructor -> gather -> a scorecard config naming AGE_WRONG.
    It converts (the columns are unknown then); `rai-audit run` refuses it in one line before
    any step runs, naming the key and the column."""
    data = boston_like()
    paths = write_case(data, tmp_path)
    case = Case("rai-vnext-preview__boston__pipeline_wrong_features.yaml", boston_like,
                "rai-vnext-preview__boston__wrong_features_pdf_gen.json")  # fmt: skip
    config = from_azure(case, tmp_path, paths)
    assert set(yaml.safe_load(config.read_text())) >= {"scorecard", "categorical_features"}
    capsys.readouterr()
    assert main(["run", str(config), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rai-audit: error: "), err
    assert "`data_explorer.features`" in err[0] and "'AGE_WRONG'" in err[0]
    assert not list((tmp_path / "out").glob("pipeline_root/*/*"))  # no task ran


# --- the files read as they are ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "step"),
    [
        ("azureml-assets__component__insight_create_spec.yaml", "constructor"),
        ("azureml-assets__component__score_card_spec.yaml", "scorecard"),
    ],
)
def test_component_spec_is_what_the_converter_reads(name, step, tmp_path):
    """A component spec, read as it is: its inputs, types and defaults are rai_audit.azure's
    (AZURE_PARAMETERS); a pipeline job naming it by `file:` is converted as that component."""
    spec = yaml.safe_load(example(name).read_text())
    assert COMPONENT_STEPS[spec["name"]] == step
    ours = {p.name: p for p in AZURE_PARAMETERS[step]}
    assert list(spec["inputs"]) == list(ours)
    for input_name, declared in spec["inputs"].items():
        assert declared["type"] == ours[input_name].type, input_name
        assert declared.get("default") == ours[input_name].default, input_name
    if step == "constructor":  # a job of this spec, with its defaults given: rai-audit's defaults
        pipeline = {
            "type": "pipeline",
            "jobs": {
                "create": {
                    "type": "command",
                    "component": f"file:{example(name)}",
                    "inputs": {
                        "title": "t",
                        "task_type": "regression",
                        "train_dataset": {"type": "uri_file", "path": "./train.parquet"},
                        "test_dataset": {"type": "uri_file", "path": "./test.parquet"},
                        "target_column_name": "y",
                        **{k: v["default"] for k, v in spec["inputs"].items() if "default" in v},
                    },
                }
            },
        }
        paths = write_case(boston_like(), tmp_path)
        (tmp_path / "pipeline.yml").write_text(yaml.safe_dump(pipeline))
        output = tmp_path / "audit.yaml"
        assert main(["from-azure", str(tmp_path / "pipeline.yml"), "--output", str(output),
                     "--set", f"model={paths['model']}"]) == 0  # fmt: skip
        config = yaml.safe_load(output.read_text())
        assert {k: config[k] for k in ("train_data", "test_data", "target_column", "sample_size")} == {
            "train_data": "train.parquet", "test_data": "test.parquet", "target_column": "y", "sample_size": 5000
        }  # fmt: skip
        assert not {"categorical_features", "classes", "dropped_features"} & set(config)  # '[]', '{}': not given


def test_vnext_boston_scorecard_config_converts_with_the_boston_job(tmp_path):
    """RAI-vNext's Boston scorecard config (Causal, a ratio on the continuous CRIM) with the
    assets' Boston job: CRIM becomes a sensitive feature (binned, where Azure drops it), and
    the config passes `rai-audit run`'s checks against Boston's columns."""
    from rai_audit.config import load_config

    paths = write_case(boston_like(), tmp_path)
    case = Case(CASES["boston"].pipeline, boston_like, "rai-vnext-preview__boston__pdf_gen.json",
                "azureml-assets__boston__cohorts.json")  # fmt: skip
    config_path = from_azure(case, tmp_path, paths)
    config = yaml.safe_load(config_path.read_text())
    assert config["sensitive_features"] == ["CRIM"]
    args, build = load_config(config_path)
    assert args["scorecard_config"]["fairness"]["kind"] == "ratio"
    assert args["scorecard_config"]["fairness"]["metrics"] == ["mean_absolute_error"]
    assert build["steps"] == ["error_analysis", "explainer", "counterfactual", "causal"]


def test_bugbash_scorecard_config_converts_with_the_programmers_job(tmp_path):
    """The toolbox's bug-bash config (one JSON line; empty DataExplorer and Fairness lists)
    with the programmers job: no sensitive features come of it, top_n is 4 (Azure would
    make it 10)."""
    from rai_audit.config import load_config

    paths = write_case(programmers_like(), tmp_path)
    case = Case(CASES["programmers"].pipeline, programmers_like,
                "responsible-ai-toolbox__bugbash__programmer-regression_score_card_config.json")  # fmt: skip
    config = yaml.safe_load(from_azure(case, tmp_path, paths).read_text())
    assert "sensitive_features" not in config
    args, _ = load_config(tmp_path / "audit.yaml")
    card = args["scorecard_config"]
    assert card["feature_importance"] == {"top_n": 4} and card["data_explorer"] == {"features": []}
    assert card["fairness"]["sensitive_features"] == [] and [t["metric"] for t in card["targets"]] == [
        "mean_absolute_error", "mean_squared_error"
    ]  # fmt: skip


def test_boston_cohort_file_reads_as_pandas_selects(tmp_path):
    """The assets' cohort list, read as it is: `greater`/`less` on TAX select what pandas does."""
    from rai_audit.core.cohorts import filter_mask

    cohorts = load_cohorts(example("azureml-assets__boston__cohorts.json"))
    test = boston_like().test.reset_index(drop=True)
    masks = {c["name"]: filter_mask(c["filter"], test) for c in cohorts}
    assert (masks["High Tax"] == (test["TAX"] > 300).to_numpy()).all()
    assert (masks["Low Tax"] == (test["TAX"] < 300).to_numpy()).all()


def test_scorecard_configs_read_as_they_are():
    """Every scorecard config of the folder parses (their use: the tests named in COVERED)."""
    for name in [n for n, how in COVERED.items() if how.endswith("pdf config")]:
        parsed = parse_scorecard_config(example(name))
        raw = json.loads(example(name).read_text())
        assert [t["metric"] for t in parsed["targets"]] == list(raw["Metrics"]), name


# Every file of the folder and the tests that convert or read it ("pdf config": the scorecard
# config of that test's pipeline).
RUNS = "test_{}_pipeline_runs_end_to_end"
COVERED = {
    "azureml-assets__boston__cohorts.json": f"{RUNS.format('boston')}, test_boston_cohort_file_reads_as_pandas_selects",
    "azureml-assets__boston__pdf_gen.json": f"{RUNS.format('boston')}: pdf config",
    "azureml-assets__boston__pipeline_boston_analyze.yml": RUNS.format("boston"),
    "azureml-assets__component__insight_create_spec.yaml": "test_component_spec_is_what_the_converter_reads",
    "azureml-assets__component__score_card_spec.yaml": "test_component_spec_is_what_the_converter_reads",
    "azureml-examples__housing-classification__pdf_gen.json": f"{RUNS.format('housing')}: pdf config",
    "azureml-examples__housing-classification__pipeline.yml": RUNS.format("housing"),
    "azureml-examples__programmer-regression__pdf_gen.json": f"{RUNS.format('programmers')}: pdf config",
    "azureml-examples__programmer-regression__pipeline.yml": RUNS.format("programmers"),
    "rai-vnext-preview__adult__pdf_gen.json": f"{RUNS.format('adult')}: pdf config",
    "rai-vnext-preview__adult__pipeline_adult_analyse.yaml": RUNS.format("adult"),
    "rai-vnext-preview__boston__pdf_gen.json": "test_vnext_boston_scorecard_config_converts_with_the_boston_job: "
    "pdf config",
    "rai-vnext-preview__boston__pipeline_wrong_features.yaml": (
        "test_wrong_features_pipeline_is_refused_before_any_step"
    ),
    "rai-vnext-preview__boston__wrong_features_pdf_gen.json": "test_wrong_features_pipeline_is_refused_before_any_step:"
    " pdf config",
    "rai-vnext-preview__wine__pdf_gen.json": f"{RUNS.format('wine')}: pdf config",
    "rai-vnext-preview__wine__pipeline_wine_analyse.yaml": RUNS.format("wine"),
    "responsible-ai-toolbox__bugbash__programmer-regression_score_card_config.json": (
        "test_bugbash_scorecard_config_converts_with_the_programmers_job: pdf config"
    ),
}


def test_every_example_file_has_its_test():
    """A file added to ../shared/azure-examples needs a test here; each test named exists."""
    files = sorted(p.name for p in AZURE_EXAMPLES.iterdir() if p.name != "README.md")
    assert files == sorted(COVERED)
    for how in COVERED.values():
        for test in how.split(":")[0].split(", "):
            assert callable(globals().get(test)), test


# --- bad Azure inputs: one line naming the job, its component and the parameter; nothing written ---


def _boston_job(tmp_path: Path) -> dict[str, Any]:
    """The assets' Boston job in a folder with its scorecard config and cohort file where it names them."""
    files = tmp_path / "boston_analyze_scorecard_config"
    files.mkdir()
    (files / "pdf_gen.json").write_bytes(example("azureml-assets__boston__pdf_gen.json").read_bytes())
    (files / "cohorts.json").write_bytes(example("azureml-assets__boston__cohorts.json").read_bytes())
    return yaml.safe_load(example(CASES["boston"].pipeline).read_text())


def _edit(job: str, key: str, value: Any) -> Callable[[dict[str, Any], Path], None]:
    def edit(document: dict[str, Any], folder: Path) -> None:
        target = document["jobs"][job]
        if key == "component":
            target["component"] = value
        else:
            target["inputs"][key] = value

    return edit


def _bad_cohorts(document: dict[str, Any], folder: Path) -> None:
    bad = [{"name": "Tabs", "cohort_filter_list": [{"method": "contains", "arg": ["tab"], "column": "style"}]}]
    (folder / "boston_analyze_scorecard_config" / "cohorts.json").write_text(json.dumps(bad))


def _consumer(document: dict[str, Any], folder: Path) -> None:
    document["jobs"]["fairness_01"] = {
        "type": "command",
        "component": "file:./fairness.yml",
        "inputs": {"rai_insights_dashboard": "${{parent.jobs.create_rai_job.outputs.rai_insights_dashboard}}"},
    }


BAD = [
    pytest.param(
        _edit(
            "error_analysis_01", "component", "azureml://registries/azureml/components/rai_tabular_fairness/versions/1"
        ),
        r"job `error_analysis_01`: unknown Azure Responsible AI component 'rai_tabular_fairness'",
        id="unknown-component",
    ),
    pytest.param(
        _consumer,
        r"job `fairness_01` \(file:./fairness.yml\) `rai_insights_dashboard` takes the output of the constructor job "
        r"`create_rai_job`: an unknown component",
        id="unknown-component-on-the-dashboard",
    ),
    pytest.param(
        _edit("error_analysis_01", "max_depth", "three"),
        r"job `error_analysis_01` \(file:../components/error_analysis/spec.yaml\) `max_depth`: Azure's type is "
        r"integer, got 'three'",
        id="wrong-type-integer",
    ),
    pytest.param(
        _edit("causal_01", "skip_cat_limit_checks", "maybe"),
        r"job `causal_01` \(file:../components/causal/spec.yaml\) `skip_cat_limit_checks`: Azure's type is boolean",
        id="wrong-type-boolean",
    ),
    pytest.param(
        _edit("error_analysis_01", "filter_features", ["AGE"]),
        r"`filter_features`: Azure's type is string, got \['AGE'\]; Azure takes a list or mapping as JSON text",
        id="wrong-type-list-not-json-text",
    ),
    pytest.param(
        _edit("causal_01", "treatment_features", '["ZN", "NOX"'),
        r"job `causal_01` \(file:../components/causal/spec.yaml\) `treatment_features`: '\[\"ZN\", \"NOX\"' is not "
        r"JSON text",
        id="json-text-not-json",
    ),
    pytest.param(
        _edit("counterfactual_01", "permitted_range", "{TAX: [200, 400]}"),
        r"job `counterfactual_01` \(file:../components/counterfactual/spec.yaml\) `permitted_range`: .* is not JSON "
        r"text",
        id="json-mapping-not-json",
    ),
    pytest.param(
        _bad_cohorts,
        r"job `scorecard_01` \(file:../components/score_card/spec.yaml\) `predefined_cohorts_json` .*cohorts.json: "
        r"cohort 'Tabs', filter 0: `method` must be one of",
        id="cohort-method-azure-has-not",
    ),
    pytest.param(
        _edit("error_analysis_01", "max_dept", 3),
        r"job `error_analysis_01` \(file:../components/error_analysis/spec.yaml\) has no parameter `max_dept`",
        id="unknown-parameter",
    ),
    pytest.param(
        _edit("create_rai_job", "task_type", "forecasting"),
        r"`task_type`: forecasting has no rai-audit equivalent",
        id="forecasting",
    ),
    pytest.param(
        _edit("causal_01", "treatment_cost", "[[1, 2], [3, 4]]"),
        r"`treatment_cost`: per-row treatment costs \(arrays\) have no rai-audit equivalent",
        id="per-row-costs",
    ),
]


@pytest.mark.parametrize(("edit", "message"), BAD)
def test_bad_azure_input_is_refused_in_one_line_and_nothing_is_written(tmp_path, capsys, edit, message):
    document = _boston_job(tmp_path)
    edit(document, tmp_path)
    (tmp_path / "pipeline.yml").write_text(yaml.safe_dump(document, sort_keys=False))
    output = tmp_path / "out" / "audit.yaml"
    capsys.readouterr()
    assert main(["from-azure", str(tmp_path / "pipeline.yml"), "--output", str(output)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rai-audit: error: "), err
    assert re.search(message, err[0]), err[0]
    assert not output.exists() and not output.parent.exists()


def test_the_boston_job_in_its_folder_converts_with_its_own_files(tmp_path, capsys):
    """The job's own scorecard config and cohort paths (no --pdf-config/--cohorts) are followed;
    the model and data stay placeholders that `rai-audit run` refuses by name."""
    (tmp_path / "pipeline.yml").write_text(yaml.safe_dump(_boston_job(tmp_path), sort_keys=False))
    output = tmp_path / "audit.yaml"
    assert main(["from-azure", str(tmp_path / "pipeline.yml"), "--output", str(output)]) == 0
    out = capsys.readouterr().out
    assert "fill in before `rai-audit run` (or give them with --set): model, train_data, test_data" in out
    assert (
        "job `explain_01` (file:../components/explanation/spec.yaml) `comment` 'Some random string': not mapped" in out
    )
    config = yaml.safe_load(output.read_text())
    assert config["scorecard"] == {"config": "boston_analyze_scorecard_config/pdf_gen.json"}
    assert config["cohorts"] == "boston_analyze_scorecard_config/cohorts.json"
    assert config["model"].startswith(PLACEHOLDER)
    assert main(["run", str(output), "--output", str(tmp_path / "run")]) == 2
    assert "config `model` is still the placeholder `rai-audit from-azure` wrote" in capsys.readouterr().err


# --- what each run reports, against pandas and scikit-learn --------------------------------------


def finished(runs: dict[str, Future[Run]], name: str) -> Run:
    run = runs[name].result()
    assert run.returncode == 0, f"{name}: rai-audit run failed ({run.seconds:.0f} s):\n{run.stderr[-3000:]}"
    return run


def predictions(run: Run) -> tuple[pd.Series, np.ndarray]:
    """The test labels and the model's predictions, from the files the run was given (the
    rows of ``test_frame``)."""
    model = sio.load(run.paths["model"], trusted=sio.get_untrusted_types(file=run.paths["model"]))
    test = read_test_rows(run)
    features = [c for c in test.columns if c != run.data.target and c not in run.config.get("dropped_features", [])]
    return test[run.data.target], model.predict(test[features])


def read_test_rows(run: Run) -> pd.DataFrame:
    return pd.read_parquet(run.paths["test"])


def target(card: dict[str, Any], metric: str) -> dict[str, Any]:
    return next(t for t in card["targets"] if t["metric"] == metric and t["cohort"] is None)


def fairness(card: dict[str, Any], feature: str, metric: str) -> dict[str, Any]:
    entry = next(e for e in card["fairness"] if e["feature"] == feature)
    return next(m for m in entry["metrics"] if m["metric"] == metric)


def spread(values: pd.Series, counts: pd.Series, kind: str, min_group_size: int = 30) -> float:
    """A fairness difference (largest minus smallest) or ratio (smallest over largest) of the
    groups with enough rows."""
    kept = values[counts >= min_group_size]
    return float(kept.max() - kept.min()) if kind == "difference" else float(kept.min() / kept.max())


def test_boston_pipeline_runs_end_to_end(runs):
    """azureml-assets' Boston job, with its scorecard config and cohort file: a regression audit
    with every analysis; the MAE target, the Tax cohorts and each step's Azure parameters."""
    run = finished(runs, "boston")
    config = run.config
    assert config["categorical_features"] == ["CHAS", "RAD"] and config["task_type"] == "regression"
    assert config["counterfactual"] == {"total_CFs": 10, "desired_range": [10, 300]}
    assert config["causal"]["treatment_features"] == ["ZN", "NOX"] and config["causal"]["heterogeneity_features"] == []
    y, p = predictions(run)
    card = run.json("scorecard", "scorecard.json")
    mae = target(card, "mean_absolute_error")
    assert (mae["op"], mae["value"]) == ("<=", 20.0)
    assert mae["measured"] == pytest.approx(skm.mean_absolute_error(y, p))
    assert target(card, "mean_squared_error")["measured"] == pytest.approx(skm.mean_squared_error(y, p))
    insights = run.json("gather", "insights.json")
    counts = {c["name"]: c["count"] for c in insights["cohorts"]}
    test = read_test_rows(run)
    assert counts == {"High Tax": int((test["TAX"] > 300).sum()), "Low Tax": int((test["TAX"] < 300).sum())}
    assert max(n["depth"] for n in insights["error_analysis"]["tree"]["nodes"]) <= 3  # max_depth
    assert insights["counterfactual"]["desired_range"] == [10, 300]
    assert [t["feature"] for t in insights["causal"]["treatments"]] == ["ZN", "NOX"]
    assert insights["causal"]["fit"]["heterogeneity_features"] == []


def test_housing_pipeline_runs_end_to_end(runs):
    """azureml-examples' housing classification job: `classes` as the labels, the opposite
    class for counterfactuals, five causal treatments, the accuracy target."""
    run = finished(runs, "housing")
    assert run.config["classes"] == ["Less than median", "More than median"]
    y, p = predictions(run)
    card = run.json("scorecard", "scorecard.json")
    accuracy = target(card, "accuracy_score")
    assert accuracy["measured"] == pytest.approx(skm.accuracy_score(y, p))
    assert accuracy["verdict"] == ("PASS" if skm.accuracy_score(y, p) >= 0.7 else "FAIL")
    positive = "More than median"  # the second of the sorted classes: Azure's and rai-audit's default
    assert target(card, "precision_score")["measured"] == pytest.approx(skm.precision_score(y, p, pos_label=positive))
    insights = run.json("gather", "insights.json")
    assert insights["counterfactual"]["desired_class"] == "opposite"
    treatments = ["OverallCond", "OverallQual", "Fireplaces", "GarageCars", "ScreenPorch"]
    assert [t["feature"] for t in insights["causal"]["treatments"]] == treatments


def test_programmers_pipeline_runs_end_to_end(runs):
    """azureml-examples' programmers regression job: categorical names with spaces, the heatmap
    on style and Employer, and the scorecard's fairness over IDE and style (now sensitive
    features of the audit) as pandas computes them."""
    run = finished(runs, "programmers")
    assert run.config["sensitive_features"] == ["IDE", "style"]
    assert run.config["error_analysis"]["heatmap_features"] == ["style", "Employer"]
    insights = run.json("gather", "insights.json")
    assert [a["feature"] for a in insights["error_analysis"]["heatmap"]["axes"]] == ["style", "Employer"]
    assert insights["counterfactual"]["desired_range"] == [5, 10]
    y, p = predictions(run)
    card = run.json("scorecard", "scorecard.json")
    frame = read_test_rows(run).assign(squared=(y - p) ** 2)
    for feature in ("IDE", "style"):
        by_group = frame.groupby(feature)["squared"]
        figure = fairness(card, feature, "mean_squared_error")
        assert figure["difference"]["value"] == pytest.approx(spread(by_group.mean(), by_group.size(), "difference"))


def test_adult_pipeline_runs_end_to_end(runs):
    """RAI-vNext's Adult job on UCI Adult (../shared/datasets) with its column names: Race
    dropped from the model (feature_metadata) yet its fairness ratio reported, heterogeneity
    by marital status, the first two heatmap features the model has."""
    run = finished(runs, "adult")
    config = run.config
    assert config["dropped_features"] == ["Race"] and config["sensitive_features"] == ["Race"]
    assert config["error_analysis"]["heatmap_features"] == ["Sex", "Workclass"]
    insights = run.json("gather", "insights.json")
    assert "Race" not in insights["explanation"]["features"]
    assert insights["causal"]["fit"]["heterogeneity_features"] == ["Marital Status"]
    assert [t["feature"] for t in insights["causal"]["treatments"]] == ["Age", "Sex"]
    y, p = predictions(run)
    card = run.json("scorecard", "scorecard.json")
    assert target(card, "accuracy_score")["measured"] == pytest.approx(skm.accuracy_score(y, p))
    hits = read_test_rows(run).assign(hit=(y == p)).groupby("Race")["hit"]
    figure = fairness(card, "Race", "accuracy_score")
    assert figure["ratio"]["value"] == pytest.approx(spread(hits.mean(), hits.size(), "ratio"))


def test_wine_pipeline_runs_end_to_end(runs):
    """RAI-vNext's wine job (multiclass, no causal job): `desired_class: 1` is Azure's index
    into the sorted classes [0, 1, 2]."""
    run = finished(runs, "wine")
    assert run.config["counterfactual"]["desired_class"] == 1 and "causal" not in run.config
    insights = run.json("gather", "insights.json")
    assert insights["task_type"] == "multiclass_classification"
    assert insights["counterfactual"]["desired_class"] == str(sorted(run.data.train["class"].unique())[1])
    y, p = predictions(run)
    card = run.json("scorecard", "scorecard.json")
    assert target(card, "accuracy_score")["measured"] == pytest.approx(skm.accuracy_score(y, p))
    assert set(insights["insights"]) == {"error_analysis", "explanation", "counterfactual"}


def test_run_time_of_the_converted_pipelines(runs):
    """Every run's time, printed (pytest -s) for the record."""
    times = {name: runs[name].result().seconds for name in CASES}
    print("rai-audit run seconds:", {k: round(v, 1) for k, v in times.items()})
    assert all(v > 0 for v in times.values())
