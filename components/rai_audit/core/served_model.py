"""A model already served over HTTP, called as a scikit-learn estimator.

Two protocols:

- ``v2``: the Open Inference Protocol (KServe V2 REST, spoken by MLServer and Triton):
  ``POST {url}/v2/models/{name}[/versions/{v}]/infer``. The inputs are those the model's
  metadata (``GET {url}/v2/models/{name}``) lists: one tensor per column when it names the
  columns, one 2-D tensor of all features when it has a single input; with no inputs listed
  (MLServer's scikit-learn runtime) one tensor per column and the request asks for a
  DataFrame (``content_type: pd``). Outputs: ``predict``/``predict_proba`` (MLServer) or
  those the metadata lists, a probability output recognised by its name or shape.
- ``mlflow``: MLflow's scoring server, ``POST {url}/invocations`` with ``dataframe_split``.

Rows go in batches (``batch_size``), at most ``concurrency`` requests at a time, each with a
timeout, retried with exponential backoff on a connection error, a timeout, a 5xx or a 429.
TLS certificates are verified (``REQUESTS_CA_BUNDLE`` names a private CA). Credentials are
request headers whose values are read from environment variables (``headers_from_env``
maps a header to a variable's NAME): descriptors, meta.json and messages hold only names.

The endpoint is written into the constructor's artifact as a JSON descriptor (``write_
descriptor``); ``load_endpoint`` reads it back in every later step. ``stats`` counts the
calls and rows sent, which each model-calling step records in its meta.json.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from rai_audit.core._errors import RAIInputError
from rai_audit.core.models import ModelAdapter

PROTOCOLS = ("v2", "mlflow")
DESCRIPTOR_KIND = "rai-audit served model"
DESCRIPTOR_FILE = "endpoint.json"  # the constructor artifact's model/ file for a served model
# Answers worth another attempt: the server is busy, restarting or briefly failing.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0
_V2_TYPES = {"b": "BOOL", "i": "INT64", "u": "UINT64", "f": "FP64"}
_PROBA_NAMES = ("proba", "probabilit", "prob")


@dataclass(frozen=True)
class Endpoint:
    """Where the model is served and how to call it (no secret: header -> env var NAME)."""

    url: str
    protocol: str = "v2"
    name: str = ""
    version: str = ""
    headers_from_env: dict[str, str] = field(default_factory=dict)
    batch_size: int = 512
    concurrency: int = 4
    timeout_s: float = 60.0
    retries: int = 3
    backoff_s: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            raise RAIInputError(f"`model_endpoint` must be an http:// or https:// URL, got {self.url!r}")
        if any(ord(c) < 33 for c in self.url):
            raise RAIInputError("`model_endpoint` holds spaces or control characters")
        if urlsplit(self.url).username is not None:  # it would be written into every artifact
            raise RAIInputError(
                "`model_endpoint` must not hold credentials (user:password@); send them as a header with "
                "`model_headers_from_env`, e.g. {Authorization: MODEL_TOKEN}"
            )
        object.__setattr__(self, "url", self.url.rstrip("/"))
        if self.protocol not in PROTOCOLS:
            raise RAIInputError(f"`model_protocol` must be one of {list(PROTOCOLS)}, got {self.protocol!r}")
        if self.protocol == "v2" and not self.name:
            raise RAIInputError(
                "`model_name` must name the served model for protocol v2 (the {name} of /v2/models/{name}/infer)"
            )
        if not isinstance(self.headers_from_env, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) and v for k, v in self.headers_from_env.items()
        ):
            raise RAIInputError(
                "`model_headers_from_env` must map header names to environment variable names, "
                f"e.g. {{'Authorization': 'MODEL_TOKEN'}}, got {self.headers_from_env!r}"
            )
        for name, low in (("batch_size", 1), ("concurrency", 1), ("retries", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise RAIInputError(f"`model_{name}` must be an integer >= {low}, got {value!r}")
        for name in ("timeout_s", "backoff_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise RAIInputError(f"`model_{name}` must be a number of seconds >= 0, got {value!r}")
        if self.timeout_s == 0:
            raise RAIInputError("`model_timeout_s` must be more than 0 seconds")

    @property
    def infer_url(self) -> str:
        if self.protocol == "mlflow":
            return f"{self.url}/invocations"
        return f"{self.metadata_url}/infer"

    @property
    def metadata_url(self) -> str:
        version = f"/versions/{self.version}" if self.version else ""
        return f"{self.url}/v2/models/{self.name}{version}"


@dataclass
class CallStats:
    """Requests answered and rows sent (thread-safe: batches go out in parallel)."""

    calls: int = 0
    rows: int = 0
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, calls: int = 0, rows: int = 0, retries: int = 0) -> None:
        with self.lock:
            self.calls += calls
            self.rows += rows
            self.retries += retries
        if self is not _TOTALS:
            _TOTALS.add(calls, rows, retries)

    def as_dict(self) -> dict[str, int]:
        with self.lock:
            return {"calls": self.calls, "rows": self.rows, "retries": self.retries}


# Every served model's calls in this process: a step loads the model more than once (and
# runs batches in threads), and records what it sent between two readings (``calls_since``).
_TOTALS = CallStats()


def counts() -> dict[str, int]:
    return _TOTALS.as_dict()


def calls_since(model: Any, before: dict[str, int]) -> dict[str, Any] | None:
    """The calls and rows this process sent to ``model``'s endpoint since ``before``
    (``counts()``), for meta.json; None for a model that is not served."""
    if not isinstance(model, ServedModel):
        return None
    now = counts()
    return {
        "endpoint": model.endpoint.url,
        "protocol": model.endpoint.protocol,
        **{k: now[k] - before.get(k, 0) for k in now},
    }


def model_calls(model: ServedModel) -> dict[str, Any]:
    """The calls and rows ``model`` itself sent (the constructor's one model), for meta.json."""
    return {"endpoint": model.endpoint.url, "protocol": model.endpoint.protocol, **model.stats.as_dict()}


class ServedModel(ModelAdapter):
    """``predict(X)`` through the endpoint; see ``ServedClassifier`` for probabilities.

    A ``ModelAdapter`` (its own ``native`` model): the steps take it as any model that is not
    scikit-learn's (the explainer encodes text features for the mimic and calls it on them).
    """

    served = True

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        classes: Sequence[Any] | None = None,
        outputs: dict[str, str | None] | None = None,
        inputs: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(source=f"served ({endpoint.protocol})", native=self, predict=self.predict)
        self.endpoint = endpoint
        if classes is not None:
            self.classes_ = np.asarray(list(classes), dtype=object)
        # v2 output names: the label/value output and the probability output (None: absent).
        self.outputs = dict(outputs or {"label": "predict", "proba": None})
        self.inputs = list(inputs or [])  # the v2 metadata's inputs; empty: one per column
        self.stats = CallStats()
        self._local = threading.local()
        self._last: tuple[int, tuple[np.ndarray, np.ndarray | None]] | None = None

    # A step may hand the model to worker processes: it travels as its descriptor (its
    # counters and connections stay behind; the steps run its calls in threads to count them).
    def __reduce__(self) -> Any:
        return (_from_descriptor, (self.descriptor(),))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.endpoint.protocol} {self.endpoint.infer_url})"

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self._infer(X)[0]

    def descriptor(self) -> dict[str, Any]:
        """What ``load_endpoint`` needs to call the model again: no secret, only env var names."""
        classes = getattr(self, "classes_", None)
        return {
            "kind": DESCRIPTOR_KIND,
            "endpoint": self.endpoint.url,
            **{k: v for k, v in asdict(self.endpoint).items() if k != "url"},
            "classes": None if classes is None else [_plain(c) for c in classes],
            "outputs": self.outputs,
            "inputs": self.inputs,
            "probabilities": isinstance(self, ServedClassifier),
        }

    # --- calling -------------------------------------------------------------------------

    def _infer(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels (or values) and probabilities (or None) for every row, batch by batch.

        The last answer is kept: a caller asking for predict then predict_proba of the same
        rows (the constructor, interpret-community's mimic) makes one round of requests.
        """
        if not isinstance(X, pd.DataFrame):
            raise RAIInputError(f"a served model takes a DataFrame of the model features, got {type(X).__name__}")
        key = _frame_key(X)
        last = self._last
        if last is not None and last[0] == key:
            return last[1]
        n = len(X)
        size = self.endpoint.batch_size
        starts = list(range(0, n, size))
        if not starts:
            result: tuple[np.ndarray, np.ndarray | None] = (np.array([]), None)
            return result
        batches = [(s, X.iloc[s : s + size]) for s in starts]
        if len(batches) == 1 or self.endpoint.concurrency == 1:
            answers = [self._call_batch(s, b) for s, b in batches]
        else:
            with ThreadPoolExecutor(max_workers=min(self.endpoint.concurrency, len(batches))) as pool:
                answers = list(pool.map(lambda sb: self._call_batch(*sb), batches))
        labels = np.concatenate([a[0] for a in answers])
        probas = [a[1] for a in answers]
        proba: np.ndarray | None = None
        if all(p is not None for p in probas):
            proba = np.concatenate([p for p in probas if p is not None])
        result = (labels, proba)
        self._last = (key, result)
        return result

    def _call_batch(self, start: int, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        what = f"the call for rows {start}-{start + len(X) - 1} to {self.endpoint.infer_url}"
        if self.endpoint.protocol == "mlflow":
            body = _mlflow_body(X)
            answer = self._post(body, what, len(X))
            return _mlflow_answer(answer, len(X), what), None
        body = _v2_body(X, self.inputs, [o for o in (self.outputs.get("label"), self.outputs.get("proba")) if o])
        answer = self._post(body, what, len(X))
        return _v2_answer(answer, len(X), self.outputs, getattr(self, "classes_", None), what)

    def _session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            import requests  # type: ignore[import-untyped]

            session = requests.Session()
            session.trust_env = True  # proxies and REQUESTS_CA_BUNDLE from the environment
            self._local.session = session
        return session

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        for header, variable in self.endpoint.headers_from_env.items():
            value = os.environ.get(variable)
            if not value:
                raise RAIInputError(
                    f"environment variable {variable} is not set: `model_headers_from_env` sends its value "
                    f"as the header {header} to {self.endpoint.url} (on Kubernetes, set it from a secret)"
                )
            headers[header] = value
        return headers

    def _post(self, body: dict[str, Any], what: str, rows: int) -> Any:
        return self._request("POST", self.endpoint.infer_url, what, rows=rows, body=body)

    def _request(self, method: str, url: str, what: str, *, rows: int = 0, body: Any = None) -> Any:
        """One request, retried on a connection error, a timeout, a 5xx or a 429."""
        import requests

        endpoint = self.endpoint
        data = None if body is None else json.dumps(body, allow_nan=False).encode()
        attempts = endpoint.retries + 1
        failure = ""
        for attempt in range(attempts):
            if attempt:
                self.stats.add(retries=1)
            wait = endpoint.backoff_s * 2**attempt
            try:
                response = self._session().request(
                    method, url, data=data, headers=self._headers(), timeout=endpoint.timeout_s, verify=True
                )
            except requests.Timeout:
                failure = f"no answer within {endpoint.timeout_s:g} s (`model_timeout_s`)"
            except requests.exceptions.SSLError as err:
                raise RAIInputError(
                    f"model endpoint {endpoint.url}: its TLS certificate could not be verified ({_reason(err)}); "
                    "give the CA that signed it in REQUESTS_CA_BUNDLE"
                ) from None
            except requests.ConnectionError as err:
                failure = f"could not connect ({_reason(err)})"
            else:
                if rows:
                    self.stats.add(calls=1, rows=rows)
                status = response.status_code
                if status < 300:
                    try:
                        return response.json()
                    except ValueError:
                        raise RAIInputError(
                            f"model endpoint: {what} was answered with something other than JSON: "
                            f"{_snippet(response.text)}"
                        ) from None
                if status in (401, 403):
                    raise RAIInputError(self._auth_message(status))
                if status not in RETRY_STATUSES:
                    raise RAIInputError(
                        f"model endpoint refused {what} with HTTP {status}: {_snippet(response.text)}"
                        + (
                            f"; is `model_name` ({endpoint.name!r}) the name the server serves the model under?"
                            if status == 404 and endpoint.protocol == "v2"
                            else ""
                        )
                    )
                failure = f"HTTP {status}: {_snippet(response.text)}"
                after = response.headers.get("Retry-After", "")
                if after.isdigit():
                    wait = max(wait, float(after))
            if attempt + 1 < attempts:
                time.sleep(min(wait, MAX_BACKOFF_S))
        raise RAIInputError(
            f"model endpoint {url} failed {what.split(' to ')[0]} after {attempts} attempt"
            f"{'s' if attempts > 1 else ''} (`model_retries` {endpoint.retries}): {failure}"
        )

    def _auth_message(self, status: int) -> str:
        word = "401 Unauthorized" if status == 401 else "403 Forbidden"
        given = self.endpoint.headers_from_env
        if given:
            sent = ", ".join(f"{h} (from the environment variable {v})" for h, v in given.items())
            return (
                f"model endpoint {self.endpoint.url} answered {word}: the request carried the header {sent}; "
                "check that variable's value (the token or key the endpoint expects)"
            )
        return (
            f"model endpoint {self.endpoint.url} answered {word}: set the header it needs with "
            "`model_headers_from_env`, e.g. {Authorization: MODEL_TOKEN}, and put the value (e.g. "
            "'Bearer <token>') in the environment variable MODEL_TOKEN (on Kubernetes, from a secret)"
        )

    def metadata(self) -> dict[str, Any]:
        """The v2 model metadata (name, inputs, outputs)."""
        answer = self._request("GET", self.endpoint.metadata_url, f"the metadata call to {self.endpoint.metadata_url}")
        if not isinstance(answer, dict):
            raise RAIInputError(f"model endpoint {self.endpoint.metadata_url} answered metadata that is not a mapping")
        return answer


class ServedClassifier(ServedModel):
    """A served classifier whose endpoint also answers probabilities."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        proba = self._infer(X)[1]
        assert proba is not None  # a ServedClassifier always asks for them
        return proba


# --- building and reading back ------------------------------------------------------------


def connect(endpoint: Endpoint, *, classifier: bool, classes: Sequence[Any] | None = None) -> ServedModel:
    """The served model, its inputs and outputs found out from the endpoint (the constructor's
    first look): the v2 metadata, and for a classifier whether it answers probabilities."""
    model = ServedModel(endpoint, classes=classes)
    if endpoint.protocol == "mlflow":
        return model
    meta = model.metadata()
    inputs = [
        {"name": str(i.get("name")), "datatype": str(i.get("datatype", "")), "shape": list(i.get("shape") or [])}
        for i in meta.get("inputs") or []
        if isinstance(i, dict) and i.get("name")
    ]
    listed = [o for o in meta.get("outputs") or [] if isinstance(o, dict) and o.get("name")]
    if listed:
        names = [str(o["name"]) for o in listed]
        proba = next((n for n in names if any(p in n.lower() for p in _PROBA_NAMES)), None)
        label = next((n for n in names if n != proba), None)
        outputs = {"label": label, "proba": proba if classifier else None}
    else:  # MLServer's scikit-learn runtime: any method of the model, asked for by name
        outputs = {"label": "predict", "proba": "predict_proba" if classifier else None}
    if outputs["label"] is None and outputs["proba"] is None:
        raise RAIInputError(f"model endpoint {endpoint.metadata_url} lists no output to read predictions from")
    return (ServedClassifier if outputs["proba"] else ServedModel)(
        endpoint, classes=classes, outputs=outputs, inputs=inputs
    )


def write_endpoint(endpoint: Endpoint, path: str | Path, *, classifier: bool) -> Path:
    """A descriptor of the endpoint alone (what it answers is found out when it is loaded)."""
    path = Path(path)
    descriptor = {"kind": DESCRIPTOR_KIND, "endpoint": endpoint.url, **asdict(endpoint), "probabilities": classifier}
    del descriptor["url"]
    path.write_text(json.dumps(descriptor, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


SCRATCH_PREFIX = "rai-audit-endpoint-"  # the constructor's scratch folder for a descriptor


def is_scratch(path: Any) -> bool:
    return path not in (None, "") and Path(path).parent.name.startswith(SCRATCH_PREFIX)


def descriptor_file(path: Any) -> Path | None:
    """The endpoint descriptor ``path`` is or holds (a KFP Model artifact may be a folder
    holding it), or None."""
    if path in (None, "") or "://" in str(path) or str(path).startswith(("models:/", "runs:/")):
        return None
    path = Path(path)
    if path.is_dir():
        found = [p for p in path.rglob("*") if p.is_file() and is_descriptor_file(p)]
        return found[0] if len(found) == 1 else None
    return path if is_descriptor_file(path) else None


def is_descriptor_file(path: Any) -> bool:
    """Whether ``path`` is a JSON endpoint descriptor (a small JSON object with `endpoint`)."""
    if path in (None, ""):
        return False
    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size > 1_000_000:
            return False
        return is_descriptor(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return False


def settle(model: ServedModel, y_pred: np.ndarray, proba: np.ndarray | None, path: Path) -> None:
    """After the constructor's predictions: refuse probabilities not in the classes' order,
    and write the descriptor with what was found out (classes, outputs, inputs) to ``path``."""
    classes = getattr(model, "classes_", None)
    if proba is not None and classes is not None:
        check_class_order(y_pred, proba, list(classes), model.endpoint.url)
    write_descriptor(model, path)


def write_descriptor(model: ServedModel, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(model.descriptor(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def is_descriptor(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("endpoint"), str)


def endpoint_from_descriptor(descriptor: dict[str, Any]) -> Endpoint:
    fields = {k: descriptor[k] for k in Endpoint.__dataclass_fields__ if k != "url" and k in descriptor}
    return Endpoint(url=descriptor["endpoint"], **fields)


def _from_descriptor(descriptor: dict[str, Any]) -> ServedModel:
    cls = ServedClassifier if descriptor.get("probabilities") else ServedModel
    return cls(
        endpoint_from_descriptor(descriptor),
        classes=descriptor.get("classes"),
        outputs=descriptor["outputs"],
        inputs=descriptor.get("inputs"),
    )


def load_endpoint(path: str | Path) -> ServedModel:
    """The served model a JSON endpoint descriptor (the constructor's, or the user's) names."""
    path = Path(path)
    try:
        descriptor = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise RAIInputError(f"model endpoint descriptor {path} could not be read: {err}") from None
    if not is_descriptor(descriptor):
        raise RAIInputError(f"model endpoint descriptor {path} must be a JSON object with an `endpoint` URL")
    endpoint = endpoint_from_descriptor(descriptor)
    if "outputs" not in descriptor:  # a descriptor the user wrote: find out the rest
        return connect(
            endpoint, classifier=bool(descriptor.get("probabilities", True)), classes=descriptor.get("classes")
        )
    return _from_descriptor(descriptor)


def is_served(model: Any) -> bool:
    return isinstance(model, ServedModel)


def check_class_order(y_pred: np.ndarray, proba: np.ndarray, classes: Sequence[Any], url: str) -> None:
    """Refuse probabilities whose columns do not follow ``classes``: the label of each row's
    most probable column must mostly be the label the endpoint predicts."""
    if len(y_pred) == 0:
        return
    agree = float(np.mean(np.asarray(classes, dtype=object)[proba.argmax(axis=1)].astype(str) == y_pred.astype(str)))
    if agree < 0.5:
        raise RAIInputError(
            f"model endpoint {url}: its probability columns do not follow the classes {list(map(_plain, classes))} "
            f"(the most probable column names the predicted label in {agree:.0%} of the test rows); give "
            "`classes` in the order of the model's probability outputs"
        )


def joblib_backend(model: Any) -> str | None:
    """joblib's backend for a step's workers: threads for a served model (its calls wait on
    the network; its counters and connections stay in this process), else joblib's default."""
    return "threading" if isinstance(model, ServedModel) else None


def summed_calls(metas: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The shards' model calls added up (a merged step's meta.json), or None if none has any."""
    found = [m["model_calls"] for m in metas if isinstance(m.get("model_calls"), dict)]
    if not found:
        return None
    return {
        "endpoint": found[0]["endpoint"],
        "protocol": found[0]["protocol"],
        **{k: sum(int(f.get(k, 0)) for f in found) for k in ("calls", "rows", "retries")},
        "shards": len(found),
    }


# --- the protocols' bodies and answers ---------------------------------------------------------


def _frame_key(X: pd.DataFrame) -> int:
    hashed = pd.util.hash_pandas_object(X, index=False).to_numpy()
    return hash((tuple(map(str, X.columns)), len(X), hashed.tobytes()))


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) and getattr(value, "shape", None) == () else value


def _json_values(values: pd.Series) -> list[Any]:
    """A column as JSON values: missing as null (JSON has no NaN), numpy scalars as Python's."""
    return [None if _missing(v) else _plain(v) for v in values.tolist()]


def _v2_column(name: str, values: pd.Series, datatype: str = "", rank: int = 1) -> dict[str, Any]:
    kind = values.dtype.kind if not isinstance(values.dtype, pd.CategoricalDtype) else "O"
    datatype = datatype or _V2_TYPES.get(kind, "BYTES")
    if datatype == "INT64" and values.isna().any():
        datatype = "FP64"  # a nullable integer column with gaps: JSON null in a float tensor
    tensor: dict[str, Any] = {"name": name, "shape": [len(values), 1][:rank], "datatype": datatype}
    if datatype == "BYTES":
        tensor["parameters"] = {"content_type": "str"}
        tensor["data"] = [None if _missing(v) else str(v) for v in values.tolist()]
    else:
        tensor["data"] = _json_values(values)
    return tensor


def _v2_body(X: pd.DataFrame, inputs: list[dict[str, Any]], outputs: list[str]) -> dict[str, Any]:
    columns = [str(c) for c in X.columns]
    body: dict[str, Any] = {}
    if len(inputs) == 1 and not (len(columns) == 1 and inputs[0]["name"] == columns[0]):
        spec = inputs[0]  # one tensor of all features (an ONNX or Triton model)
        text = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        if text:
            raise RAIInputError(
                f"the served model takes one tensor {spec['name']!r} ({spec['datatype']}) of all features, "
                f"but the features {text} hold text; encode them before serving or serve a model taking columns"
            )
        datatype = spec["datatype"] or "FP64"
        values = X.to_numpy(dtype=float)
        data = [
            None if math.isnan(v) else (int(v) if datatype.startswith(("INT", "UINT")) else v) for v in values.ravel()
        ]
        body["inputs"] = [{"name": spec["name"], "shape": list(values.shape), "datatype": datatype, "data": data}]
    elif inputs:
        by_name = {i["name"]: i for i in inputs}
        missing = [n for n in by_name if n not in columns]
        if missing:
            raise RAIInputError(
                f"the served model's metadata lists inputs {missing} that are not model features {columns}"
            )
        body["inputs"] = [
            _v2_column(c, X[c], by_name[c]["datatype"], 2 if len(by_name[c]["shape"]) > 1 else 1)
            if c in by_name
            else _v2_column(c, X[c])
            for c in columns
        ]
    else:
        body["parameters"] = {"content_type": "pd"}  # MLServer: the columns as one DataFrame
        body["inputs"] = [_v2_column(c, X[c]) for c in columns]
    if outputs:
        body["outputs"] = [{"name": o} for o in outputs]
    return body


def _tensor(output: dict[str, Any], what: str) -> np.ndarray:
    shape, data = output.get("shape"), output.get("data")
    if not isinstance(shape, list) or not isinstance(data, list):
        raise RAIInputError(f"model endpoint: {what} answered output {output.get('name')!r} without shape and data")
    if math.prod(int(s) for s in shape) != len(data):
        raise RAIInputError(
            f"model endpoint: {what} answered output {output.get('name')!r} with shape {shape} but {len(data)} values"
        )
    if output.get("datatype") == "BYTES":
        return np.asarray(data, dtype=object).reshape(shape)
    return np.asarray([np.nan if v is None else v for v in data], dtype=float).reshape(shape)


def _v2_answer(
    answer: Any, n: int, outputs: dict[str, str | None], classes: Any, what: str
) -> tuple[np.ndarray, np.ndarray | None]:
    if not isinstance(answer, dict) or not isinstance(answer.get("outputs"), list):
        raise RAIInputError(f"model endpoint: {what} answered no `outputs` list: {_snippet(json.dumps(answer))}")
    found = {str(o.get("name")): o for o in answer["outputs"] if isinstance(o, dict)}
    if len(found) == 1 and outputs.get("label") not in found and outputs.get("proba") is None:
        found = {outputs["label"] or "": next(iter(found.values()))}  # a server naming its one output its own way
    proba = None
    if outputs.get("proba"):
        if outputs["proba"] not in found:
            raise RAIInputError(f"model endpoint: {what} answered no {outputs['proba']!r} output (found {list(found)})")
        proba = _tensor(found[outputs["proba"]], what)
        if proba.ndim != 2 or proba.shape[0] != n or proba.shape[1] < 2:
            raise RAIInputError(
                f"model endpoint: {what} answered probabilities of shape {list(proba.shape)}; "
                f"expected [{n}, classes] for {n} rows"
            )
        _finite(proba, what, "probabilities")
        if classes is not None and proba.shape[1] != len(classes):
            raise RAIInputError(
                f"model endpoint: {what} answered {proba.shape[1]} probability columns for {len(classes)} classes"
            )
    label = outputs.get("label")
    if label:
        if label not in found:
            raise RAIInputError(f"model endpoint: {what} answered no {label!r} output (found {list(found)})")
        values = _tensor(found[label], what)
    elif proba is not None and classes is not None:
        values = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    else:
        raise RAIInputError(f"model endpoint: {what}: the classes of its probabilities are unknown; give `classes`")
    return _one_per_row(values, n, what), proba


def _one_per_row(values: np.ndarray, n: int, what: str) -> np.ndarray:
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1 or len(values) != n:
        raise RAIInputError(
            f"model endpoint: {what} answered predictions of shape {list(values.shape)}; expected one per row ({n})"
        )
    if values.dtype == object:
        if any(_missing(v) for v in values):
            raise RAIInputError(f"model endpoint: {what} answered missing (null) predictions")
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            values = values.astype(float)
        else:
            return values
    if values.dtype.kind == "f":
        _finite(values, what, "predictions")
        if np.all(np.mod(values, 1) == 0):
            return values.astype(np.int64) if values.size and np.abs(values).max() < 2**53 else values
    return values


def _finite(values: np.ndarray, what: str, kind: str) -> None:
    bad = int((~np.isfinite(values.astype(float))).sum())
    if bad:
        raise RAIInputError(f"model endpoint: {what} answered {bad} NaN, infinite or null {kind}; refused")


def _mlflow_body(X: pd.DataFrame) -> dict[str, Any]:
    return {
        "dataframe_split": {
            "columns": [str(c) for c in X.columns],
            "data": [list(row) for row in zip(*(_json_values(X[c]) for c in X.columns))],
        }
    }


def _mlflow_answer(answer: Any, n: int, what: str) -> np.ndarray:
    values = answer.get("predictions") if isinstance(answer, dict) else answer
    if not isinstance(values, list):
        raise RAIInputError(f"model endpoint: {what} answered no `predictions` list: {_snippet(json.dumps(answer))}")
    if values and isinstance(values[0], dict) and len(values[0]) == 1:  # a one-column DataFrame
        values = [next(iter(v.values())) for v in values]
    array = np.asarray(values, dtype=object)
    return _one_per_row(array, n, what)


def _snippet(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _reason(err: Exception) -> str:
    """A connection error's cause in a few words (urllib3 nests it)."""
    text = str(err)
    for marker in ("Failed to establish a new connection: ", "Caused by "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return _snippet(text.rstrip("')\""), 200)
