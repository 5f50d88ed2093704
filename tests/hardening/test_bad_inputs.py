"""Hardening: every step given bad input fails clearly, or, where the input is legitimate but
awkward (empty or single-class cohorts, all-missing or constant columns), succeeds with the
undefined figures written as null.

The suite is one table (``ROWS``). Each row names its kind, how its bad input is built (from
small slices of the real Adult and insurance data: 800/300 and 400/200 rows), the step that
runs, and the text its error must hold (the column, file or parameter at fault). For a failing
row the test checks, in this order:

1. the step's function raises ``RAIInputError`` (``ArtifactIntegrityError`` for tampered
   artifacts) whose message holds that text;
2. for rows marked ``cli``: ``rai-audit <step> ...`` (``rai_audit.cli.main``) returns 2 and
   prints exactly one line on stderr, ``rai-audit: error: ...``, holding the same text;
3. after each of these, nothing is left in the outputs' folder: no output folder, no hidden
   ``.<name>.partial-*`` sibling.

A row that shows a bug (another exception type, an unclear message, a half-written artifact)
stays in the table, marked ``xfail(strict=True)`` with what happens instead.

Parquet cannot hold two columns of one name as pandas writes it (``DataFrame.to_parquet``
refuses them), but pyarrow writes such a file; the row ``parquet-duplicate-names`` checks that
reading one is refused with the file's name, and ``csv-duplicate-headers`` covers CSV, which
has no such limit.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from rai_audit import cli
from rai_audit.config import load_config
from rai_audit.core import ArtifactIntegrityError, RAIInputError
from rai_audit.core import artifacts as A
from rai_audit.demo import train_demo_model
from rai_audit.specs import step_options
from rai_audit.steps.causal import CausalOptions, run_causal
from rai_audit.steps.constructor import ConstructorOptions, run_constructor
from rai_audit.steps.counterfactual import CounterfactualOptions, run_counterfactual
from rai_audit.steps.error_analysis import ErrorAnalysisOptions, run_error_analysis
from rai_audit.steps.explainer import ExplainerOptions, run_explainer
from rai_audit.steps.gather import run_gather
from rai_audit.steps.scorecard import ScorecardOptions, run_scorecard
from support import shared_dataset

# The pickle opt-in (ConstructorOptions.allow_pickle, CLI --allow-pickle) is detected, so the
# suite runs with and without it; every joblib model below is one this module wrote itself.
PICKLE_OPT_IN = "allow_pickle" in ConstructorOptions.__dataclass_fields__
PICKLE = {"allow_pickle": True} if PICKLE_OPT_IN else {}
PICKLE_FLAG = ["--allow-pickle"] if PICKLE_OPT_IN else []

ADULT_COHORTS = [
    {"name": "Under 30", "filter": {"column": "age", "op": "<", "value": 30}},
    {"name": "Nobody", "filter": {"column": "age", "op": ">", "value": 500}},
    {"name": "Rich", "filter": {"column": "y_true", "op": "==", "value": ">50K"}},  # one class only
]
ADULT_OPTIONS = {"target_column": "income", "task_type": "binary_classification", "positive_label": ">50K"}
INSURANCE_OPTIONS = {"target_column": "charges", "task_type": "regression"}


# --- models that misbehave (module level, so joblib can pickle them) ----------------------------


class _Wrapped:
    """A fitted classifier behind a wrapper that breaks one of its methods."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.classes_ = getattr(model, "classes_", None)


class RaisingModel(_Wrapped):
    def predict(self, X):
        raise RuntimeError("boom: the scoring service is down")


class ShortModel(_Wrapped):
    def predict(self, X):
        return self.model.predict(X)[:-1]  # one prediction short

    def predict_proba(self, X):
        return self.model.predict_proba(X)


class ProbaRaisingModel(_Wrapped):
    def predict(self, X):
        return self.model.predict(X)

    def predict_proba(self, X):
        raise ValueError("probabilities were not calibrated")


class ProbaShapeModel(_Wrapped):
    def predict(self, X):
        return self.model.predict(X)

    def predict_proba(self, X):
        return self.model.predict_proba(X)[:, :1]  # one column for two classes


class NaNRegressor:
    """A regression model that predicts NaN for every tenth row."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, X):
        y = np.asarray(self.model.predict(X), dtype=float)
        y[::10] = np.nan
        return y


# --- the world: small real data, models and artifacts built once ------------------------------


@dataclass
class Data:
    train: pd.DataFrame
    test: pd.DataFrame
    model: str  # key in World.models
    options: dict[str, Any]


@dataclass
class World:
    root: Path
    data: dict[str, Data]
    models: dict[str, Path]
    artifacts: dict[str, Path] = field(default_factory=dict)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One OpenMP/BLAS thread: on this shared 2-core machine the models' thread pools spin
    against each other (HistGradientBoosting predicts 300 rows ~5x slower with 2 threads)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _write_model(model: Any, path: Path) -> Path:
    joblib.dump(model, path)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    root = tmp_path_factory.mktemp("hardening")
    adult_train = shared_dataset("adult_train.parquet").iloc[:800].reset_index(drop=True)
    adult_test = shared_dataset("adult_test.parquet").iloc[:300].reset_index(drop=True)
    insurance = shared_dataset("insurance.parquet")
    ins_train, ins_test = insurance.iloc[:400].reset_index(drop=True), insurance.iloc[1000:1200].reset_index(drop=True)

    adult = train_demo_model(adult_train)
    categorical = [c for c in adult_train.columns if adult_train[c].dtype == object and c != "income"]
    numeric = [c for c in adult_train.columns if c not in categorical and c != "income"]
    # A model that refuses categories it never saw (OneHotEncoder's default).
    strict = Pipeline(
        [
            ("encode", ColumnTransformer([("cat", OneHotEncoder(), categorical), ("num", StandardScaler(), numeric)])),
            ("model", LogisticRegression(max_iter=300)),
        ]
    )
    strict.fit(adult_train.drop(columns="income"), adult_train["income"])
    ins_model = Pipeline(
        [
            (
                "encode",
                ColumnTransformer(
                    [
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["sex", "smoker", "region"]),
                        ("num", StandardScaler(), ["age", "bmi", "children"]),
                    ]
                ),
            ),
            ("model", LinearRegression()),
        ]
    )
    ins_model.fit(ins_train.drop(columns="charges"), ins_train["charges"])

    models_dir = root / "models"
    models_dir.mkdir()
    models = {
        "adult": _write_model(adult, models_dir / "adult.joblib"),
        "insurance": _write_model(ins_model, models_dir / "insurance.joblib"),
        "strict": _write_model(strict, models_dir / "strict.joblib"),
        "raising": _write_model(RaisingModel(adult), models_dir / "raising.joblib"),
        "short": _write_model(ShortModel(adult), models_dir / "short.joblib"),
        "proba_raising": _write_model(ProbaRaisingModel(adult), models_dir / "proba_raising.joblib"),
        "proba_shape": _write_model(ProbaShapeModel(adult), models_dir / "proba_shape.joblib"),
        "nan_regression": _write_model(NaNRegressor(ins_model), models_dir / "nan_regression.joblib"),
    }
    w = World(
        root,
        {
            "adult": Data(adult_train, adult_test, "adult", ADULT_OPTIONS),
            "insurance": Data(ins_train, ins_test, "insurance", INSURANCE_OPTIONS),
        },
        models,
    )

    def construct(name: str, data: str, **options: Any) -> Path:
        d = w.data[data]
        folder = root / "inputs" / name
        folder.mkdir(parents=True)
        d.train.to_parquet(folder / "train.parquet", index=False)
        d.test.to_parquet(folder / "test.parquet", index=False)
        out = root / "artifacts" / name
        run_constructor(
            models[d.model],
            folder / "train.parquet",
            folder / "test.parquet",
            out,
            options=ConstructorOptions(**{**d.options, **PICKLE, **options}),
        )
        return out

    w.artifacts["adult"] = construct("adult", "adult", cohorts=ADULT_COHORTS, sample_size=100)
    w.artifacts["other_run"] = construct("other_run", "adult")  # the same data, another run id
    w.artifacts["insurance"] = construct("insurance", "insurance")
    w.artifacts["own_insight"] = root / "artifacts" / "own_ea"
    run_error_analysis(w.artifacts["adult"], w.artifacts["own_insight"])
    w.artifacts["foreign_insight"] = root / "artifacts" / "foreign_ea"
    run_error_analysis(w.artifacts["other_run"], w.artifacts["foreign_insight"])
    w.artifacts["bundle"] = root / "artifacts" / "bundle"
    run_gather(w.artifacts["adult"], [], w.artifacts["bundle"])
    return w


# --- one run of a step: as a function and through the CLI ---------------------------------------


@dataclass
class Run:
    call: Callable[[], Any]  # the step's function (raises)
    argv: list[str] | None  # the same through `rai-audit ...`; None: no CLI form
    output: Path  # the function's output folder
    cli_output: Path | None = None


Build = Callable[[World, Path], Run]


def outputs(tmp: Path) -> tuple[Path, Path]:
    """The function's and the CLI's output folders; both in tmp/out, which must stay empty."""
    return tmp / "out" / "result", tmp / "out" / "cli_result"


def _flags(step: str, options: dict[str, Any]) -> list[str]:
    """The step's flags for these option values, in the parameter form its spec gives them
    (as `rai-audit run` passes them to KFP and Argo to the command line)."""
    specs = {o.name: o for o in step_options(step)}
    argv = []
    for key, value in options.items():
        o = specs[key]
        if "cli" not in o.targets:  # the constructor's cohorts: a file on the command line
            argv += [o.flag, str(value)]
            continue
        argv += [o.flag, o.as_text(o.to_parameter(value))]
    return argv


# --- builders: the constructor ------------------------------------------------------------------

Edit = Callable[[pd.DataFrame], pd.DataFrame]
Writer = Callable[[pd.DataFrame, Path], Path]


def parquet(frame: pd.DataFrame, path: Path) -> Path:
    path = path.with_suffix(".parquet")
    frame.to_parquet(path, index=False)
    return path


def constructor(
    data: str = "adult",
    *,
    train: Edit | None = None,
    test: Edit | None = None,
    write_train: Writer = parquet,
    write_test: Writer = parquet,
    model: str | None = None,
    cohorts: Any = None,
    pickle: bool = True,
    then: Callable[[Path, Path], Any] | None = None,
    **options: Any,
) -> Build:
    """The constructor on edited data. With ``then``, the constructor writes to a work folder
    and ``then(constructor_dir, output)`` runs the next step (the row's step) into the output."""

    def build(w: World, tmp: Path) -> Run:
        d = w.data[data]
        folder = tmp / "in"
        folder.mkdir(parents=True, exist_ok=True)
        train_path = write_train(train(d.train.copy()) if train else d.train, folder / "train")
        test_path = write_test(test(d.test.copy()) if test else d.test, folder / "test")
        model_path = w.models[model or d.model]
        opts = {**d.options, **options}
        if cohorts is not None:
            path = folder / "cohorts.json"
            if isinstance(cohorts, bytes):
                path.write_bytes(cohorts)
            else:
                path.write_text(json.dumps(cohorts))
            opts["cohorts"] = str(path)
        out, cli_out = outputs(tmp)
        extra = PICKLE if pickle else {}

        def call() -> None:
            target = tmp / "work" / "constructor" if then else out
            run_constructor(model_path, train_path, test_path, target, options=ConstructorOptions(**opts, **extra))
            if then:
                then(target, out)

        argv = None
        if then is None:
            argv = [
                "constructor",
                "--model",
                str(model_path),
                "--train",
                str(train_path),
                "--test",
                str(test_path),
                "--output",
                str(cli_out),
                *_flags("constructor", opts),
                *(PICKLE_FLAG if pickle else []),
            ]
        return Run(call, argv, out, cli_out)

    return build


def then_gather(constructor_dir: Path, out: Path) -> None:
    run_gather(constructor_dir, [], out)


def then_step(name: str, **options: Any) -> Callable[[Path, Path], Any]:
    return lambda constructor_dir, out: run_step(name, constructor_dir, out, options)


# --- builders: the analysis steps, gather, scorecard ---------------------------------------------

STEPS = {
    "error_analysis": (run_error_analysis, ErrorAnalysisOptions),
    "explainer": (run_explainer, ExplainerOptions),
    "counterfactual": (run_counterfactual, CounterfactualOptions),
    "causal": (run_causal, CausalOptions),
}


def run_step(name: str, constructor_dir: Path, out: Path, options: dict[str, Any]) -> Any:
    function, options_class = STEPS[name]
    return function(constructor_dir, out, options=options_class(**options))


def step_argv(name: str, constructor_dir: Path, out: Path, options: dict[str, Any]) -> list[str]:
    return [name, "--constructor", str(constructor_dir), "--output", str(out), *_flags(name, options)]


def tampered_copy(w: World, tmp: Path, artifact: str, tamper: Callable[[Path], None]) -> Path:
    folder = tmp / "work" / f"tampered_{artifact}"
    shutil.copytree(w.artifacts[artifact], folder)
    tamper(folder)
    return folder


def step(name: str, artifact: str = "adult", *, tamper: Callable[[Path], None] | None = None, **options: Any) -> Build:
    def build(w: World, tmp: Path) -> Run:
        source = tampered_copy(w, tmp, artifact, tamper) if tamper else w.artifacts[artifact]
        out, cli_out = outputs(tmp)
        return Run(
            lambda: run_step(name, source, out, options), step_argv(name, source, cli_out, options), out, cli_out
        )

    return build


def gather(
    constructor_artifact: str = "adult",
    insights: tuple[str, ...] = (),
    *,
    tamper_insight: Callable[[Path], None] | None = None,
) -> Build:
    def build(w: World, tmp: Path) -> Run:
        folders = [w.artifacts[i] for i in insights]
        if tamper_insight:
            folders[-1] = tampered_copy(w, tmp, insights[-1], tamper_insight)
        source = w.artifacts[constructor_artifact]
        out, cli_out = outputs(tmp)
        argv = ["gather", "--constructor", str(source), "--output", str(cli_out)]
        for folder in folders:
            argv += ["--insight", str(folder)]
        return Run(lambda: run_gather(source, folders, out), argv, out, cli_out)

    return build


def scorecard(
    config: dict[str, Any] | str | bytes,
    *,
    cohorts: Any = None,
    bundle: str = "bundle",
    tamper: Callable[[Path], None] | None = None,
    **options: Any,
) -> Build:
    """The scorecard step on the world's bundle; the config (and extra cohorts) as files."""

    def build(w: World, tmp: Path) -> Run:
        folder = tmp / "in"
        folder.mkdir(parents=True, exist_ok=True)
        config_path = folder / "scorecard.yaml"
        if isinstance(config, bytes):
            config_path.write_bytes(config)
        else:
            config_path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
        cohorts_path = None
        if cohorts is not None:
            cohorts_path = folder / "extra_cohorts.json"
            cohorts_path.write_text(json.dumps(cohorts))
        source = tampered_copy(w, tmp, bundle, tamper) if tamper else w.artifacts[bundle]
        out, cli_out = outputs(tmp)
        opts = {"bootstrap": 0, **options}
        argv = [
            "scorecard",
            "--dashboard",
            str(source),
            "--config",
            str(config_path),
            "--output",
            str(cli_out),
            *(["--cohorts", str(cohorts_path)] if cohorts_path else []),
            *_flags("scorecard", opts),
        ]
        return Run(
            lambda: run_scorecard(source, config_path, out, cohorts=cohorts_path, options=ScorecardOptions(**opts)),
            argv,
            out,
            cli_out,
        )

    return build


# --- file makers --------------------------------------------------------------------------------


def csv_file(frame: pd.DataFrame, path: Path) -> Path:
    path = path.with_suffix(".csv")
    frame.to_csv(path, index=False)
    return path


def latin1_csv(frame: pd.DataFrame, path: Path) -> Path:
    path = path.with_suffix(".csv")
    frame = frame.assign(workclass=frame["workclass"].where(frame.index % 3 != 0, "Sécurité sociale"))
    frame.to_csv(path, index=False, encoding="latin-1")
    return path


def csv_with_duplicate_header(frame: pd.DataFrame, path: Path) -> Path:
    """The CSV as a careless export might write it: the `age` column twice, under one header."""
    path = path.with_suffix(".csv")
    frame = frame.copy()
    frame.insert(1, "age (copy)", frame["age"])
    text = frame.to_csv(index=False)
    header, rest = text.split("\n", 1)
    path.write_text(header.replace("age (copy)", "age") + "\n" + rest)
    return path


def parquet_with_duplicate_names(frame: pd.DataFrame, path: Path) -> Path:
    """pandas refuses to write it (ValueError: Duplicate column names); pyarrow writes it."""
    path = path.with_suffix(".parquet")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    names = ["age" if n == "fnlwgt" else n for n in table.column_names]
    pq.write_table(table.rename_columns(names), path)
    return path


def truncated_parquet(frame: pd.DataFrame, path: Path) -> Path:
    path = parquet(frame, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def missing_file(frame: pd.DataFrame, path: Path) -> Path:
    return path.with_name("no-such-file.parquet")


# --- tampering ----------------------------------------------------------------------------------


def flip_byte(name: str, at: float = 0.5) -> Callable[[Path], None]:
    def tamper(folder: Path) -> None:
        path = folder / name
        data = bytearray(path.read_bytes())
        data[int(len(data) * at)] ^= 0x01
        path.write_bytes(bytes(data))

    return tamper


def truncate(name: str) -> Callable[[Path], None]:
    def tamper(folder: Path) -> None:
        path = folder / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    return tamper


def delete(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).unlink()


def add_file(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_text("an analyst's notes\n")


def edit_meta(edit: Callable[[dict[str, Any]], None], *, rehash: bool = False) -> Callable[[Path], None]:
    """Edit meta.json; with ``rehash``, rewrite the manifest to match (a consistent forgery)."""

    def tamper(folder: Path) -> None:
        meta = json.loads((folder / A.META_FILE).read_text())
        edit(meta)
        (folder / A.META_FILE).write_text(json.dumps(meta, indent=2))
        if rehash:
            rehash_manifest(folder)

    return tamper


def rehash_manifest(folder: Path) -> None:
    (folder / A.MANIFEST_FILE).unlink()
    A.write_manifest(folder)


def and_rehash(tamper: Callable[[Path], None]) -> Callable[[Path], None]:
    def both(folder: Path) -> None:
        tamper(folder)
        rehash_manifest(folder)

    return both


# --- custom builders ----------------------------------------------------------------------------


def pickle_without_opt_in(w: World, tmp: Path) -> Run:
    return constructor(pickle=False)(w, tmp)


def skops_model_with_untrusted_types(w: World, tmp: Path) -> Run:
    import skops.io

    path = tmp / "in" / "adult.skops"
    path.parent.mkdir(parents=True, exist_ok=True)
    skops.io.dump(joblib.load(w.models["adult"]), path)
    untrusted = skops.io.get_untrusted_types(file=path)
    assert any("TreePredictor" in t for t in untrusted), untrusted  # what the row's message names
    w.models["adult_skops"] = path
    return constructor(model="adult_skops", pickle=False)(w, tmp)


def corrupt_model(w: World, tmp: Path) -> Run:
    path = tmp / "in" / "corrupt.joblib"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x80\x04" + np.random.default_rng(0).bytes(256))
    w.models["corrupt"] = path
    return constructor(model="corrupt")(w, tmp)


def two_insights_of_one_kind(w: World, tmp: Path) -> Run:
    copy = tmp / "work" / "own_ea_copy"
    shutil.copytree(w.artifacts["own_insight"], copy)
    w.artifacts["own_insight_copy"] = copy
    return gather("adult", ("own_insight", "own_insight_copy"))(w, tmp)


def existing_output(w: World, tmp: Path) -> Run:
    run = step("error_analysis")(w, tmp)
    for folder in (run.output, run.cli_output):
        folder.mkdir(parents=True)
        (folder / "earlier.json").write_text("{}")

    return run


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise TimeoutError in this (the main) thread after ``seconds``."""

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def sensitive_with_thousands_of_values(w: World, tmp: Path) -> Run:
    """1,200 test rows, each its own value of a text column `person` (say a customer id) named
    as a sensitive feature (dropped from the model's input): gather builds a view per group
    (minutes for thousands), so the constructor refuses a sensitive feature of more than 100
    groups, naming it and the count, and does so at once (within 12 s)."""
    test = shared_dataset("adult_test.parquet").iloc[:1200].reset_index(drop=True)
    w.data["adult_1200"] = Data(w.data["adult"].train, test, "adult", ADULT_OPTIONS)
    ids = lambda d: d.assign(person=[f"person-{i:05d}" for i in range(len(d))])  # noqa: E731
    run = constructor(
        "adult_1200", train=ids, test=ids, sensitive_features=["person"], dropped_features=["person"], then=then_gather
    )(w, tmp)

    def call() -> None:
        with time_limit(12):
            run.call()

    return Run(call, None, run.output)


def audit_config(config: dict[str, Any] | str) -> Build:
    """`rai-audit run` on an audit config (checked before any pipeline starts: load_config)."""

    def build(w: World, tmp: Path) -> Run:
        path = tmp / "in" / "audit.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(config, str):
            path.write_text(config)
        else:
            inputs = w.root / "inputs" / "adult"
            path.write_text(
                yaml.safe_dump(
                    {
                        "model": str(w.models["adult"]),
                        **PICKLE,
                        "train_data": str(inputs / "train.parquet"),
                        "test_data": str(inputs / "test.parquet"),
                        **ADULT_OPTIONS,
                        **config,
                    }
                )
            )
        out, cli_out = outputs(tmp)
        return Run(lambda: load_config(path), ["run", str(path), "--output", str(cli_out)], out, cli_out)

    return build


# --- checks of rows that must succeed ----------------------------------------------------------


def insights(run: Run) -> dict[str, Any]:
    return json.loads((run.output / A.INSIGHTS_JSON_FILE).read_text())


def check_empty_and_single_class_cohorts(w: World, run: Run) -> None:
    doc = insights(run)
    cohorts = {c["name"]: c for c in doc["model_overview"]["cohorts"]}
    nobody, rich = cohorts["Nobody"], cohorts["Rich"]
    metrics = doc["model_overview"]["metric_names"]
    assert nobody["count"] == 0 and all(nobody[m] is None for m in metrics)
    assert nobody["confusion_matrix"]["matrix"] == [[0, 0], [0, 0]]
    assert any("'Nobody' selects no test rows" in warning for warning in doc["warnings"])
    # One true class: ROC AUC and the false positive rate are undefined, the rest are numbers.
    assert rich["count"] == int((w.data["adult"].test["income"] == ">50K").sum()) > 0
    assert rich["roc_auc_score"] is None and rich["false_positive_rate"] is None
    assert all(isinstance(rich[m], float) for m in ("accuracy_score", "recall_score", "log_loss"))
    views = {v["name"]: v for v in doc["cohort_views"]}
    assert views["Nobody"]["count"] == 0 and views["Nobody"]["metrics"]["accuracy_score"] is None
    A.verify_manifest(run.output)


def check_empty_cohort_error_analysis(w: World, run: Run) -> None:
    result = json.loads((run.output / A.INSIGHT_RESULT_FILE).read_text())
    cohorts = {c["name"]: c for c in result["cohort_errors"]["cohorts"]}
    assert cohorts["Nobody"]["count"] == 0
    assert cohorts["Nobody"]["error_rate"] is None and cohorts["Nobody"]["error_share"] == 0.0
    assert cohorts["Rich"]["error_rate"] is not None


def check_undefined_target(w: World, run: Run) -> None:
    card = json.loads((run.output / "scorecard.json").read_text())
    target = next(t for t in card["targets"] if t["cohort"] == "Nobody")
    assert target["rows"] == 0 and target["measured"] is None and target["verdict"] == "UNDEFINED"
    # Not a miss, and not a pass: a target that could not be judged blocks the gate.
    assert card["passed"] is False and card["n_undefined"] == 1
    assert (run.output / "scorecard.pdf").stat().st_size > 0


def check_empty_cohort_counterfactual(w: World, run: Run) -> None:
    result = json.loads((run.output / A.INSIGHT_RESULT_FILE).read_text())
    assert result["rows_selection"]["total"] == 0 and result["totals"]["rows"] == 0
    assert len(pd.read_parquet(run.output / "rows.parquet")) == 0


def feature_entry(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in doc["data_analysis"]["features"] if f["feature"] == name)


def check_all_missing_feature(w: World, run: Run) -> None:
    doc = insights(run)
    entry = feature_entry(doc, "capital-gain")
    assert entry["count"] == 0 and entry["missing"] == len(w.data["adult"].test)


def check_all_missing_sensitive(w: World, run: Run) -> None:
    [entry] = insights(run)["fairness"]
    assert entry["features"] == ["sex"] and [g["label"] for g in entry["by_group"]] == ["sex=(missing)"]
    # One group: nothing to compare, so no difference (it was reported as 0.0)
    assert entry["difference"]["accuracy_score"] is None and entry["undefined"]["difference"]["accuracy_score"]


def check_constant_sensitive(w: World, run: Run) -> None:
    [entry] = insights(run)["fairness"]
    assert [g["label"] for g in entry["by_group"]] == ["sex=Female"]
    assert entry["ratio"]["selection_rate"] is None and entry["undefined"]["ratio"]["selection_rate"]


def check_numeric_sensitive_binned(w: World, run: Run) -> None:
    [entry] = insights(run)["fairness"]
    assert entry["binning"]["fnlwgt"]["method"] == "quantile"
    assert len(entry["by_group"]) == 4


def check_heatmap_bins(label: str) -> Callable[[World, Run], None]:
    def check(w: World, run: Run) -> None:
        result = json.loads((run.output / A.INSIGHT_RESULT_FILE).read_text())
        [axis] = result["heatmap"]["axes"]
        assert label in [b["label"] for b in axis["bins"]]
        assert sum(c["count"] for c in result["heatmap"]["cells"]) == len(w.data["adult"].test)

    return check


def check_unseen_category_tolerated(w: World, run: Run) -> None:
    result = json.loads((run.output / A.INSIGHT_RESULT_FILE).read_text())
    assert result["n_rows"] == len(w.data["adult"].test)


def check_huge_strings(w: World, run: Run) -> None:
    doc = insights(run)
    assert doc["data"]["n_test"] == len(w.data["adult"].test)
    A.verify_manifest(run.output)


# --- the table ----------------------------------------------------------------------------------


@dataclass
class Row:
    id: str
    kind: str
    step: str
    build: Build
    match: str | tuple[str, ...] = ()
    error: type[Exception] = RAIInputError
    cli: bool = False
    check: Callable[[World, Run], None] | None = None  # set: the run must succeed
    xfail: str | None = None
    skip_unless_pickle_opt_in: bool = False
    keeps: tuple[str, ...] = ()  # folders the outputs' folder held before the run, kept as they were

    def param(self):
        marks = []
        if self.xfail:
            marks.append(pytest.mark.xfail(strict=True, reason=self.xfail))
        if self.skip_unless_pickle_opt_in:
            marks.append(pytest.mark.skipif(not PICKLE_OPT_IN, reason="ConstructorOptions has no allow_pickle yet"))
        return pytest.param(self, id=f"{self.kind}:{self.id}", marks=marks)


def nan_column(name: str) -> Edit:
    return lambda d: d.assign(**{name: np.nan})


def none_column(name: str) -> Edit:
    return lambda d: d.assign(**{name: None})


def constant(name: str, value: Any) -> Edit:
    return lambda d: d.assign(**{name: value})


def martian(d: pd.DataFrame) -> pd.DataFrame:
    return d.assign(workclass=d["workclass"].where(d.index != 7, "Martian"))


def huge_strings(d: pd.DataFrame) -> pd.DataFrame:
    return d.assign(workclass=d["workclass"].where(d.index % 50 != 0, "x" * 200_000))


SECURITY = "Security (pickle)"
ROWS: list[Row] = [
    # -- missing or misspelt columns
    Row(
        "target-misspelt",
        "missing column",
        "constructor",
        constructor(target_column="incme"),
        "`target_column` 'incme' is not a column of the train data",
        cli=True,
    ),
    Row(
        "sensitive-misspelt",
        "missing column",
        "constructor",
        constructor(sensitive_features=["gender"]),
        "`sensitive_features` names columns that are not in the data: ['gender']",
        cli=True,
    ),
    Row(
        "dropped-misspelt",
        "missing column",
        "constructor",
        constructor(dropped_features=["fnlwgt "]),
        "`dropped_features` names columns that are not in the data: ['fnlwgt ']",
    ),
    Row(
        "categorical-misspelt",
        "missing column",
        "constructor",
        constructor(categorical_features=["Workclass"]),
        "`categorical_features` names columns that are not in the data: ['Workclass']",
    ),
    Row(
        "cohort-column-misspelt",
        "missing column",
        "constructor",
        constructor(cohorts=[{"name": "Young", "filter": {"column": "agee", "op": "<", "value": 30}}]),
        ("cohort 'Young': column 'agee' is not a feature", "did you mean ['age']"),
        cli=True,
    ),
    Row(
        "heatmap-feature-unknown",
        "missing column",
        "error_analysis",
        step("error_analysis", heatmap_features=["agee"]),
        "`heatmap_features` names unknown features ['agee']",
        cli=True,
    ),
    Row(
        "tree-feature-is-the-target",
        "missing column",
        "error_analysis",
        step("error_analysis", tree_features=["income"]),
        "`tree_features` names unknown features ['income']",
    ),
    Row(
        "treatment-unknown",
        "missing column",
        "causal",
        step("causal", treatment_features=["hours"]),
        "`treatment_features` names unknown features ['hours']",
        cli=True,
    ),
    Row(
        "treatment-is-the-target",
        "missing column",
        "causal",
        step("causal", treatment_features=["income"]),
        "`treatment_features` names the target column 'income'",
    ),
    Row(
        "heterogeneity-unknown",
        "missing column",
        "causal",
        step("causal", treatment_features=["age"], heterogeneity_features=["Age"]),
        "`heterogeneity_features` names unknown features ['Age']",
    ),
    Row(
        "features-to-vary-unknown",
        "missing column",
        "counterfactual",
        step("counterfactual", features_to_vary=["hours"]),
        "`features_to_vary` names unknown features ['hours']",
        cli=True,
    ),
    # -- target absent from the test set
    Row(
        "target-absent-from-test",
        "target absent from test",
        "constructor",
        constructor(test=lambda d: d.drop(columns="income")),
        "`target_column` 'income' is not a column of the test data",
        cli=True,
    ),
    Row(
        "regression-target-absent-from-test",
        "target absent from test",
        "constructor",
        constructor("insurance", test=lambda d: d.drop(columns="charges")),
        "`target_column` 'charges' is not a column of the test data",
        cli=True,
    ),
    Row(
        "target-values-missing-in-test",
        "target absent from test",
        "constructor",
        constructor(test=lambda d: d.assign(income=d["income"].mask(d.index < 3))),
        "the test data has 3 rows with no `income` value",
    ),
    # -- wrong task type
    Row(
        "regression-on-a-classifier",
        "wrong task type",
        "constructor",
        constructor(task_type="regression", positive_label=None),
        "regression needs a numeric `income`",
        cli=True,
    ),
    Row(
        "binary-on-a-continuous-target",
        "wrong task type",
        "constructor",
        constructor("insurance", task_type="binary_classification"),
        "`task_type` binary_classification needs exactly 2 classes",
    ),
    Row(
        "classification-on-a-continuous-target",
        "wrong task type",
        "constructor",
        constructor("insurance", task_type="classification"),
        "`charges`",
    ),
    Row(
        "unknown-task-type",
        "wrong task type",
        "constructor",
        constructor(task_type="ranking"),
        "`task_type` must be one of",
    ),
    # -- labels
    Row(
        "positive-label-not-a-class",
        "labels",
        "constructor",
        constructor(positive_label="rich"),
        "`positive_label` 'rich' is not one of the classes",
        cli=True,
    ),
    Row(
        "test-labels-not-model-classes",
        "labels",
        "constructor",
        constructor(test=lambda d: d.assign(income=d["income"] + ".")),  # the raw Adult test file's labels
        "the test labels ['<=50K.', '>50K.'] are not among the model's classes",
        cli=True,
    ),
    Row(
        "classes-option-not-the-models",
        "labels",
        "constructor",
        constructor(classes=["<=50K", "rich"]),
        "class 'rich' is not one of the classes",
    ),
    Row(
        "desired-class-not-a-class",
        "labels",
        "counterfactual",
        step("counterfactual", desired_class="rich"),
        "`desired_class` must be 'opposite' or one of the classes",
        cli=True,
    ),
    # -- all-missing or constant columns
    Row(
        "all-missing-feature",
        "all-NaN or constant column",
        "gather",
        constructor(train=nan_column("capital-gain"), test=nan_column("capital-gain"), then=then_gather),
        check=check_all_missing_feature,
    ),
    Row(
        "all-missing-heatmap-feature",
        "all-NaN or constant column",
        "error_analysis",
        constructor(
            train=nan_column("capital-gain"),
            test=nan_column("capital-gain"),
            then=then_step("error_analysis", heatmap_features=["capital-gain"]),
        ),
        check=check_heatmap_bins("(missing)"),
    ),
    Row(
        "constant-heatmap-feature",
        "all-NaN or constant column",
        "error_analysis",
        constructor(
            train=constant("age", 40),
            test=constant("age", 40),
            then=then_step("error_analysis", heatmap_features=["age"]),
        ),
        check=check_heatmap_bins("40"),
    ),
    Row(
        "all-missing-sensitive-feature",
        "all-NaN or constant column",
        "gather",
        constructor(train=none_column("sex"), test=none_column("sex"), sensitive_features=["sex"], then=then_gather),
        check=check_all_missing_sensitive,
    ),
    Row(
        "constant-sensitive-feature",
        "all-NaN or constant column",
        "gather",
        constructor(
            train=constant("sex", "Female"),
            test=constant("sex", "Female"),
            sensitive_features=["sex"],
            then=then_gather,
        ),
        check=check_constant_sensitive,
    ),
    Row(
        "all-missing-treatment",
        "all-NaN or constant column",
        "causal",
        constructor(
            train=nan_column("hours-per-week"),
            test=nan_column("hours-per-week"),
            then=then_step("causal", treatment_features=["hours-per-week"], heterogeneity_features=[], n_jobs=1),
        ),
        "hours-per-week",
    ),
    Row(
        "constant-treatment",
        "all-NaN or constant column",
        "causal",
        constructor(
            train=constant("sex", "Male"),
            test=constant("sex", "Male"),
            then=then_step("causal", treatment_features=["sex"], heterogeneity_features=[], n_jobs=1),
        ),
        ("no treatment could be fitted", "'sex'", "only one class: Male"),
    ),
    # -- unseen categories in test
    Row(
        "unseen-category-strict-model",
        "unseen categories",
        "constructor",
        constructor(model="strict", test=martian),
        ("Martian", "workclass"),
    ),
    Row(
        "unseen-category-tolerant-model",
        "unseen categories",
        "error_analysis",
        constructor(test=martian, then=then_step("error_analysis", heatmap_features=["workclass"])),
        check=check_unseen_category_tolerated,
    ),
    # -- empty and single-class cohorts: not failures, undefined figures are null
    Row(
        "empty-and-single-class-cohorts",
        "empty / single-class cohorts",
        "gather",
        gather("adult"),
        check=check_empty_and_single_class_cohorts,
    ),
    Row(
        "empty-cohort-error-rate",
        "empty / single-class cohorts",
        "error_analysis",
        step("error_analysis"),
        check=check_empty_cohort_error_analysis,
    ),
    Row(
        "target-on-an-empty-cohort",
        "empty / single-class cohorts",
        "scorecard",
        scorecard(
            {
                "targets": [
                    "accuracy_score >= 0.5",
                    {"metric": "accuracy_score", "op": ">=", "value": 0.5, "cohort": "Nobody"},
                ]
            }
        ),
        check=check_undefined_target,
    ),
    Row(
        "counterfactuals-of-an-empty-cohort",
        "empty / single-class cohorts",
        "counterfactual",
        step("counterfactual", rows="Nobody"),
        check=check_empty_cohort_counterfactual,
    ),
    # -- a sensitive feature with thousands of values
    Row(
        "numeric-sensitive-with-hundreds-of-values",
        "sensitive feature with thousands of values",
        "gather",
        constructor(sensitive_features=["fnlwgt"], then=then_gather),
        check=check_numeric_sensitive_binned,
    ),
    Row(
        "text-sensitive-with-1200-values",
        "sensitive feature with thousands of values",
        "constructor",
        sensitive_with_thousands_of_values,
        ("`sensitive_features`: 'person' has 1200 distinct values", "more than 100 groups"),
    ),
    # -- files
    Row(
        "non-utf8-csv",
        "files",
        "constructor",
        constructor(write_test=latin1_csv),
        ("test data file", "test.csv could not be read as CSV", "utf-8"),
        cli=True,
    ),
    Row(
        "non-utf8-cohort-file",
        "files",
        "constructor",
        constructor(
            cohorts='{"cohorts": [{"name": "Café", "filter": {"column": "age", "op": "<", "value": 30}}]}'.encode(
                "latin-1"
            )
        ),
        ("cohort file", "cohorts.json is not valid JSON"),
        cli=True,
    ),
    Row(
        "non-utf8-scorecard-config",
        "files",
        "scorecard",
        scorecard("model: {name: 'Modèle'}\n".encode("latin-1")),
        ("scorecard config", "scorecard.yaml is not valid YAML/JSON"),
    ),
    Row(
        "huge-strings-in-a-categorical",
        "files",
        "gather",
        constructor(train=huge_strings, test=huge_strings, then=then_gather),
        check=check_huge_strings,
    ),
    Row(
        "csv-duplicate-headers",
        "files",
        "constructor",
        constructor(write_train=csv_with_duplicate_header, write_test=csv_with_duplicate_header),
        "duplicate column names ['age']",
    ),
    Row(
        "parquet-duplicate-names",
        "files",
        "constructor",
        constructor(write_train=parquet_with_duplicate_names, write_test=parquet_with_duplicate_names),
        ("train data file", "train.parquet could not be read as Parquet", "age"),
    ),
    Row(
        "truncated-parquet-input",
        "files",
        "constructor",
        constructor(write_test=truncated_parquet),
        "test.parquet could not be read as Parquet",
        cli=True,
    ),
    Row(
        "missing-input-file",
        "files",
        "constructor",
        constructor(write_train=missing_file),
        ("train data file", "no-such-file.parquet does not exist"),
    ),
    # -- models
    Row(
        "predict-raises",
        "model",
        "constructor",
        constructor(model="raising"),
        "the model could not predict on the test data (RuntimeError: boom: the scoring service is down)",
        cli=True,
    ),
    Row(
        "predict-wrong-length",
        "model",
        "constructor",
        constructor(model="short"),
        "the model's predict() must return one value per row (300), got shape (299,)",
        cli=True,
    ),
    Row(
        "predict-proba-raises",
        "model",
        "constructor",
        constructor(model="proba_raising"),
        "the model's predict_proba failed on the test data: probabilities were not calibrated",
    ),
    Row(
        "predict-proba-wrong-shape",
        "model",
        "constructor",
        constructor(model="proba_shape"),
        "predict_proba must return shape (300, 2), got (300, 1)",
    ),
    Row(
        "regression-predicts-nan",
        "model",
        "gather",
        constructor("insurance", model="nan_regression", then=then_gather),
        "NaN",
    ),
    Row(
        "corrupt-model-file",
        "model",
        "constructor",
        corrupt_model,
        ("model file", "corrupt.joblib could not be loaded"),
    ),
    Row(
        "pickle-without-opt-in",
        SECURITY,
        "constructor",
        pickle_without_opt_in,
        ("adult.joblib is a pickle", "runs any code", "allow_pickle"),
        cli=True,
        skip_unless_pickle_opt_in=True,
    ),
    Row(
        "skops-untrusted-type",
        SECURITY,
        "constructor",
        skops_model_with_untrusted_types,
        ("adult.skops contains types skops does not trust", "TreePredictor", "skops_trusted_types"),
        cli=True,
    ),
    # -- insights from another run
    Row(
        "gather-insight-of-another-run",
        "insight from another run",
        "gather",
        gather("adult", ("foreign_insight",)),
        ("foreign_ea (error_analysis) comes from constructor run", "re-run it on this constructor's output"),
        error=ArtifactIntegrityError,
        cli=True,
    ),
    Row(
        "gather-two-insights-of-one-kind",
        "insight from another run",
        "gather",
        two_insights_of_one_kind,
        "two insights of kind 'error_analysis'",
        error=ArtifactIntegrityError,
    ),
    Row(
        "gather-constructor-as-insight",
        "insight from another run",
        "gather",
        gather("adult", ("other_run",)),
        "is of kind 'constructor'; gather takes one of",
        error=ArtifactIntegrityError,
    ),
    Row(
        "scorecard-of-a-constructor-artifact",
        "insight from another run",
        "scorecard",
        scorecard({"targets": []}, bundle="adult"),
        "must be of kind 'dashboard', got 'constructor'",
        error=ArtifactIntegrityError,
        cli=True,
    ),
    # -- tampered artifacts given to a later step
    Row(
        "flipped-byte-in-predictions",
        "tampered artifact",
        "error_analysis",
        step("error_analysis", tamper=flip_byte("predictions.parquet")),
        "changed: predictions.parquet",
        error=ArtifactIntegrityError,
        cli=True,
    ),
    Row(
        "truncated-test-features",
        "tampered artifact",
        "explainer",
        step("explainer", tamper=truncate("test.parquet")),
        "changed: test.parquet",
        error=ArtifactIntegrityError,
    ),
    Row(
        "deleted-cohorts-file",
        "tampered artifact",
        "counterfactual",
        step("counterfactual", tamper=delete("cohorts.json")),
        "missing: cohorts.json",
        error=ArtifactIntegrityError,
        cli=True,
    ),
    Row(
        "edited-meta",
        "tampered artifact",
        "error_analysis",
        step("error_analysis", tamper=edit_meta(lambda m: m.update(positive_label="<=50K"))),
        "changed: meta.json",
        error=ArtifactIntegrityError,
    ),
    Row(
        "extra-file",
        "tampered artifact",
        "causal",
        step("causal", tamper=add_file("notes.txt"), treatment_features=["age"]),
        "not in manifest: notes.txt",
        error=ArtifactIntegrityError,
    ),
    Row(
        "deleted-manifest",
        "tampered artifact",
        "error_analysis",
        step("error_analysis", tamper=delete("manifest.json")),
        "has no manifest.json; was it written by rai-audit?",
        error=ArtifactIntegrityError,
        cli=True,
    ),
    Row(
        "truncated-manifest",
        "tampered artifact",
        "error_analysis",
        step("error_analysis", tamper=truncate("manifest.json")),
        ("manifest.json is not valid JSON",),
    ),
    Row(
        "deleted-model-copy",
        "tampered artifact",
        "explainer",
        step("explainer", tamper=lambda f: shutil.rmtree(f / "model")),
        "missing: model/adult.joblib",
        error=ArtifactIntegrityError,
    ),
    Row(
        "meta-kind-forged-with-manifest",
        "tampered artifact",
        "error_analysis",
        step("error_analysis", tamper=edit_meta(lambda m: m.update(kind="dashboard"), rehash=True)),
        "must be of kind 'constructor', got 'dashboard'",
        error=ArtifactIntegrityError,
    ),
    Row(
        "schema-version-forged-with-manifest",
        "tampered artifact",
        "error_analysis",
        step("error_analysis", tamper=edit_meta(lambda m: m.update(schema_version="9.9"), rehash=True)),
        "has schema_version '9.9'",
        error=ArtifactIntegrityError,
    ),
    Row(
        "truncated-parquet-with-rehashed-manifest",
        "tampered artifact",
        "error_analysis",
        step("error_analysis", tamper=and_rehash(truncate("predictions.parquet"))),
        "predictions.parquet",
    ),
    Row(
        "meta-key-deleted-with-rehashed-manifest",
        "tampered artifact",
        "error_analysis",
        step("error_analysis", tamper=edit_meta(lambda m: m.pop("task_type"), rehash=True)),
        "task_type",
    ),
    Row(
        "flipped-byte-in-bundle",
        "tampered artifact",
        "scorecard",
        scorecard({"targets": ["accuracy_score >= 0.5"]}, tamper=flip_byte("insights.json")),
        "changed: insights.json",
        error=ArtifactIntegrityError,
        cli=True,
    ),
    Row(
        "flipped-byte-in-insight",
        "tampered artifact",
        "gather",
        gather("adult", ("own_insight",), tamper_insight=flip_byte("result.json")),
        "changed: result.json",
        error=ArtifactIntegrityError,
    ),
    # -- scorecard configs
    Row(
        "scorecard-unknown-key",
        "scorecard config",
        "scorecard",
        scorecard({"target": ["accuracy_score >= 0.8"]}),
        "unknown scorecard config keys ['target']",
        cli=True,
    ),
    Row(
        "scorecard-bad-operator-text",
        "scorecard config",
        "scorecard",
        scorecard({"targets": ["accuracy_score => 0.8"]}),
        "`targets[0]`: cannot read target 'accuracy_score => 0.8'",
        cli=True,
    ),
    Row(
        "scorecard-bad-operator-mapping",
        "scorecard config",
        "scorecard",
        scorecard({"targets": [{"metric": "accuracy_score", "op": "≥", "value": 0.8}]}),
        "`targets[0]`: `op` must be one of",
    ),
    Row(
        "scorecard-unknown-metric",
        "scorecard config",
        "scorecard",
        scorecard({"targets": ["acuracy_score >= 0.8"]}),
        "`targets[0]`: unknown metric 'acuracy_score'",
        cli=True,
    ),
    Row(
        "scorecard-regression-metric-on-a-classifier",
        "scorecard config",
        "scorecard",
        scorecard({"targets": ["r2_score >= 0.5"]}),
        "unknown metric 'r2_score'",
    ),
    Row(
        "scorecard-unknown-cohort",
        "scorecard config",
        "scorecard",
        scorecard({"targets": [{"metric": "accuracy_score", "op": ">=", "value": 0.5, "cohort": "Over 90"}]}),
        "`targets[0]`: unknown cohort 'Over 90'",
        cli=True,
    ),
    Row(
        "scorecard-change-target-with-cohort-and-kind",
        "scorecard config",
        "scorecard",
        scorecard(
            {
                "changes": [
                    {"metric": "selection_rate", "kind": "ratio", "op": ">=", "value": -0.1, "cohort": "Under 30"}
                ]
            }
        ),
        "`changes[0]`: fairness figures are over the whole test set; `cohort` is for metrics",
        cli=True,
    ),
    Row(
        "scorecard-unknown-explorer-feature",
        "scorecard config",
        "scorecard",
        scorecard({"data_explorer": {"features": ["agee"]}}),
        "`data_explorer.features`: unknown feature 'agee'",
    ),
    Row(
        "scorecard-unknown-sensitive-feature",
        "scorecard config",
        "scorecard",
        scorecard({"fairness": {"sensitive_features": ["gender"], "targets": ["selection_rate ratio >= 0.8"]}}),
        "`fairness.sensitive_features`: unknown feature 'gender'",
    ),
    Row(
        "scorecard-not-yaml",
        "scorecard config",
        "scorecard",
        scorecard("targets: [accuracy_score >= 0.8\n"),
        "scorecard.yaml is not valid YAML/JSON",
        cli=True,
    ),
    Row(
        "scorecard-extra-cohort-named-like-the-bundles",
        "scorecard config",
        "scorecard",
        scorecard({"targets": []}, cohorts=[{"name": "Nobody", "filter": {"column": "age", "op": ">", "value": 90}}]),
        "extra cohort 'Nobody' has the name of a cohort of the bundle",
    ),
    # -- cohort files
    Row(
        "cohort-unknown-op",
        "cohort file",
        "constructor",
        constructor(cohorts=[{"name": "Young", "filter": {"column": "age", "op": "=~", "value": 30}}]),
        ("cohorts are not valid at cohorts/0/filter", "'=~'"),
        cli=True,
    ),
    Row(
        "cohort-bad-value-type",
        "cohort file",
        "constructor",
        constructor(cohorts=[{"name": "Young", "filter": {"column": "age", "op": "<", "value": "thirty"}}]),
        "value 'thirty' must be a number, as 'age' is numeric",
        cli=True,
    ),
    Row(
        "cohort-unknown-column",
        "cohort file",
        "constructor",
        constructor(cohorts=[{"name": "Women", "filter": {"column": "Sex", "op": "==", "value": "Female"}}]),
        ("column 'Sex' is not a feature", "did you mean ['sex']"),
    ),
    Row(
        "cohort-duplicate-names",
        "cohort file",
        "constructor",
        constructor(
            cohorts=[
                {"name": "Young", "filter": {"column": "age", "op": "<", "value": 30}},
                {"name": "Young", "filter": {"column": "age", "op": "<", "value": 25}},
            ]
        ),
        "cohort names must be unique, got duplicates ['Young']",
        cli=True,
    ),
    Row(
        "cohort-order-op-on-text",
        "cohort file",
        "constructor",
        constructor(cohorts=[{"name": "M", "filter": {"column": "sex", "op": "<", "value": "M"}}]),
        "`<` needs a numeric column, but 'sex' is categorical",
    ),
    Row(
        "cohort-between-reversed",
        "cohort file",
        "constructor",
        constructor(cohorts=[{"name": "Mid", "filter": {"column": "age", "op": "between", "value": [60, 30]}}]),
        "`between` needs low <= high, got [60, 30]",
    ),
    Row(
        "cohort-file-not-json",
        "cohort file",
        "constructor",
        constructor(cohorts=b"cohorts: [young]\n"),
        "cohorts.json is not valid JSON",
    ),
    Row(
        "cohort-azure-unknown-method",
        "cohort file",
        "constructor",
        constructor(
            cohorts=[{"name": "Old", "cohort_filter_list": [{"method": "older", "arg": [60], "column": "age"}]}]
        ),
        "cohort 'Old', filter 0: `method` must be one of",
    ),
    # -- numbers given on the command line
    Row(
        "negative-sample-size",
        "CLI numbers",
        "constructor",
        constructor(sample_size=-5),
        "`sample_size` must be an integer >= 0 (0 means every row), got -5",
        cli=True,
    ),
    Row(
        "explainer-shard-index-equals-count",
        "CLI numbers",
        "explainer",
        step("explainer", shard_index=2, shard_count=2),
        "`shard_index` must be in [0, shard_count=2), got 2",
        cli=True,
    ),
    Row(
        "counterfactual-shard-index-beyond-count",
        "CLI numbers",
        "counterfactual",
        step("counterfactual", shard_index=5, shard_count=2),
        "`shard_index` must be in [0, shard_count=2), got 5",
        cli=True,
    ),
    Row(
        "explainer-no-shards",
        "CLI numbers",
        "explainer",
        step("explainer", shard_count=0),
        "`shard_count` must be an integer >= 1, got 0",
        cli=True,
    ),
    Row(
        "explainer-more-shards-than-rows",
        "CLI numbers",
        "explainer",
        step("explainer", shard_count=500),
        "`shard_count` (500) must not exceed the number of rows to explain (100)",
    ),
    Row(
        "error-analysis-depth-zero",
        "CLI numbers",
        "error_analysis",
        step("error_analysis", max_depth=0),
        "`max_depth` must be an integer >= 1, got 0",
        cli=True,
    ),
    Row(
        "counterfactual-negative-total-cfs",
        "CLI numbers",
        "counterfactual",
        step("counterfactual", total_CFs=-1),
        "`total_CFs` must be an integer >= 1, got -1",
        cli=True,
    ),
    Row(
        "causal-negative-train-sample",
        "CLI numbers",
        "causal",
        step("causal", treatment_features=["age"], train_sample_size=-1),
        "`train_sample_size` must be an integer >= 0, got -1",
        cli=True,
    ),
    Row(
        "causal-alpha-out-of-range",
        "CLI numbers",
        "causal",
        step("causal", treatment_features=["age"], alpha=1.5),
        "`alpha` must be a number between 0 and 1, got 1.5",
    ),
    Row(
        "scorecard-negative-bootstrap",
        "CLI numbers",
        "scorecard",
        scorecard({"targets": []}, bootstrap=-1),
        "`bootstrap` must be an integer >= 0, got -1",
        cli=True,
    ),
    # -- options of the wrong type (JSON on the command line, YAML in an audit config)
    Row(
        "heatmap-features-not-a-list",
        "bad option types",
        "error_analysis",
        step("error_analysis", heatmap_features=5),
        "`heatmap_features`",
        cli=True,
    ),
    Row(
        "desired-range-not-a-list",
        "bad option types",
        "counterfactual",
        step("counterfactual", desired_range=5),
        "`desired_range`",
        cli=True,
    ),
    Row(
        "increase-only-not-a-list",
        "bad option types",
        "counterfactual",
        step("counterfactual", increase_only=5),
        "`increase_only`",
    ),
    Row(
        "treatment-features-nested-list",
        "bad option types",
        "causal",
        step("causal", treatment_features=[[]]),
        "`treatment_features`",
        cli=True,
    ),
    # -- audit configs (`rai-audit run`)
    Row(
        "audit-config-unknown-key",
        "audit config",
        "run",
        audit_config({"modle": "model.joblib"}),
        "unknown config keys ['modle']",
        cli=True,
    ),
    Row(
        "audit-config-step-option-unknown",
        "audit config",
        "run",
        audit_config({"error_analysis": {"max_dept": 3}}),
        "config `error_analysis` has unknown options ['max_dept']",
        cli=True,
    ),
    Row(
        "audit-config-step-option-not-a-list",
        "audit config",
        "run",
        audit_config({"error_analysis": {"heatmap_features": 5}}),
        "`heatmap_features`",
        cli=True,
    ),
    Row(
        "audit-config-model-path-too-long",
        "audit config",
        "run",
        audit_config({"model": "m" * 300 + ".joblib"}),
        "config `model`",
        cli=True,
    ),
    Row(
        "audit-config-not-yaml",
        "audit config",
        "run",
        audit_config("model: [model.joblib\n"),
        "is not valid YAML/JSON",
        cli=True,
    ),
    Row(
        "audit-config-negative-sample-size",
        "audit config",
        "run",
        audit_config({"sample_size": -5}),
        "config `sample_size` must be an integer >= 0 (0 means every row), got -5",
        cli=True,
    ),
    Row(
        "audit-config-shards-not-a-number",
        "audit config",
        "run",
        audit_config({"explainer": {"shards": "x"}}),
        "config `explainer.shards` must be an integer >= 1, got 'x'",
        cli=True,
    ),
    Row(
        "output-folder-not-empty",
        "output folder",
        "error_analysis",
        existing_output,
        "already exists and is not empty; choose a new folder or remove the old one",
        cli=True,
        keeps=("cli_result", "result"),
    ),
]


def _matches(message: str, match: str | tuple[str, ...]) -> None:
    for part in (match,) if isinstance(match, str) else match:
        assert part in message, f"{part!r} not in the message: {message}"


def _assert_nothing_left(tmp: Path, keeps: tuple[str, ...] = ()) -> None:
    """No output folder and no hidden .<name>.partial-* sibling beside it (folders that were
    there before the run are kept unchanged)."""
    folder = tmp / "out"
    left = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    assert left == sorted(keeps), f"left behind in the outputs' folder: {left}"
    for name in keeps:
        assert [p.name for p in (folder / name).iterdir()] == ["earlier.json"]


def test_the_table_covers_each_kind_and_the_cli():
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids))
    failing = [r for r in ROWS if r.check is None]
    assert len(ROWS) >= 40 and sum(r.cli for r in failing) >= 15
    assert all(r.match for r in failing) and all(r.check is None for r in ROWS if r.cli)


@pytest.mark.parametrize("row", [r.param() for r in ROWS])
def test_bad_input(row: Row, world: World, tmp_path: Path, capsys):
    run = row.build(world, tmp_path)
    if row.check is not None:  # a legitimate input: the run succeeds and says what is undefined
        run.call()
        row.check(world, run)
        return
    with pytest.raises(row.error) as raised:
        run.call()
    _matches(str(raised.value), row.match)
    _assert_nothing_left(tmp_path, row.keeps)
    if not row.cli:
        return
    capsys.readouterr()
    code = cli.main(run.argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, (code, captured.err)
    assert len(lines) == 1 and lines[0].startswith("rai-audit: error: "), captured.err
    _matches(lines[0], row.match)
    _assert_nothing_left(tmp_path, row.keeps)
