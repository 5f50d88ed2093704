// What-if (tab `what-if`): pick a row of the active cohort (or the selected row), edit any
// feature, and see the model's prediction and probabilities, the local explanation of the
// edited row and its counterfactuals, all from the live server (`rai-audit dashboard`), which
// answers with the audit's own model, explainer and counterfactual search. A static page
// shows the row and says how to go live.
import { useContext, useEffect, useMemo, useRef, useState } from "preact/hooks";
import { Ctx } from "../context.js";
import { Chart } from "../chart.jsx";
import { count, fmt } from "../format.js";
import { GO_LIVE, isServed, useLive } from "../live.js";
import { Note, Table, Warn } from "../ui.jsx";

const MISSING = "(missing)";
const MAX_LISTED = 500; // rows of the cohort offered in the row list
const DEBOUNCE_MS = 250;

const CONFIG = {
  font: "DejaVu Sans, sans-serif",
  axis: { labelFontSize: 10, titleFontSize: 11 },
  view: { stroke: null },
};

// Inline styles: the page's stylesheet belongs to the template; these views lay out their own form.
const ROW_STYLE = "display:flex;flex-wrap:wrap;gap:.2rem .6rem;align-items:center;margin:.25rem 0;padding:.1rem .3rem";
const CHANGED_STYLE = ROW_STYLE + ";background:#fff1c2";
const LABEL_STYLE = "min-width:9.5rem;font-weight:600";

const show = (v) => (v === null || v === undefined ? MISSING : typeof v === "number" ? fmt(v) : String(v));
const same = (a, b) =>
  a === b || (typeof a === "number" && typeof b === "number" && Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a)));

// The carried rows of the active cohort (row ids), at most MAX_LISTED, and how many it has.
function cohortRows(table, cohort) {
  const ids = [];
  let total = 0;
  for (let i = 0; i < table.n; i++) {
    if (cohort.mask[i]) {
      total += 1;
      if (ids.length < MAX_LISTED) ids.push(table.rowId[i]);
    }
  }
  return { ids, total };
}

// A carried row's features as the page holds them (the static page's view of it).
function carriedRow(table, rowId) {
  const i = table.indexOf(rowId);
  if (i < 0) return null;
  const features = {};
  for (const f of table.features) features[f.name] = table.column(f.name)[i];
  return { row_id: rowId, features, y_true: table.column("y_true")[i], y_pred: table.column("y_pred")[i] };
}

// The class whose contributions are shown: the positive class (binary), the predicted class
// (multiclass), the output (regression), as the explanation step reports them.
function explainedLabel(info, answer) {
  if (answer.labels.length === 1) return answer.labels[0];
  if (info.task_type === "binary_classification") return String(info.positive_label);
  return String(answer.predictions[0]);
}

function contributionSpec(rows, label) {
  return {
    config: CONFIG,
    width: 420,
    height: { step: 16 },
    data: { values: rows.map((r) => ({ feature: r.feature, value: r.value })) },
    mark: { type: "bar" },
    encoding: {
      y: { field: "feature", type: "nominal", sort: rows.map((r) => r.feature), title: null, axis: { labelLimit: 220 } },
      x: { field: "value", type: "quantitative", title: "contribution to " + label },
      color: { condition: { test: "datum.value < 0", value: "#b2182b" }, value: "#2166ac" },
      tooltip: [
        { field: "feature", type: "nominal" },
        { field: "value", type: "quantitative", format: ".4g" },
      ],
    },
  };
}

// One feature's input, typed from the data: a number with its range, or one of its values.
function FeatureInput({ spec, position, value, text, changed, onNumber, onChoice }) {
  const id = "whatif-feature-" + position; // feature names may hold any character
  if (spec.kind === "numeric") {
    const range = spec.min === null ? "" : fmt(spec.min) + " to " + fmt(spec.max);
    const outside = typeof value === "number" && spec.min !== null && (value < spec.min || value > spec.max);
    return (
      <div class={"whatif-feature" + (changed ? " changed" : "")} style={changed ? CHANGED_STYLE : ROW_STYLE}>
        <label for={id} style={LABEL_STYLE}>
          {spec.name}
        </label>
        <input
          id={id}
          type="number"
          name={"feature-" + spec.name}
          step={spec.integer ? 1 : "any"}
          min={spec.min === null ? undefined : spec.min}
          max={spec.max === null ? undefined : spec.max}
          value={text}
          placeholder={spec.missing ? MISSING : ""}
          aria-describedby={id + "-range"}
          onInput={(e) => onNumber(e.currentTarget.value)}
        />
        <span id={id + "-range"} class="muted" style="font-size:.8rem">
          {range ? "data: " + range + (spec.integer ? ", whole numbers" : "") : "no value in the data"}
          {spec.missing ? "; empty = missing" : ""}
          {outside ? " (outside the data's range: the model extrapolates)" : ""}
        </span>
      </div>
    );
  }
  const choices = [...spec.categories];
  if (value !== null && value !== undefined && !choices.some((c) => c === value)) choices.push(value);
  const index = value === null || value === undefined ? "missing" : String(choices.findIndex((c) => c === value));
  return (
    <div class={"whatif-feature" + (changed ? " changed" : "")} style={changed ? CHANGED_STYLE : ROW_STYLE}>
      <label for={id} style={LABEL_STYLE}>
        {spec.name}
      </label>
      <select id={id} name={"feature-" + spec.name} onChange={(e) => onChoice(e.currentTarget.value === "missing" ? null : choices[+e.currentTarget.value])}>
        {choices.map((c, i) => (
          <option value={String(i)} selected={index === String(i)}>
            {String(c)}
          </option>
        ))}
        {spec.missing || index === "missing" ? (
          <option value="missing" selected={index === "missing"}>
            {MISSING}
          </option>
        ) : null}
      </select>
    </div>
  );
}

function RowPicker({ table, active, rowId, onPick, nTest }) {
  const { ids, total } = useMemo(() => cohortRows(table, active), [table, active]);
  const listed = rowId !== null && !ids.includes(rowId) ? [rowId, ...ids] : ids;
  const [typed, setTyped] = useState("");
  return (
    <div class="whatif-picker">
      <label class="select">
        <span>Row of the cohort</span>{" "}
        <select name="row" onChange={(e) => onPick(+e.currentTarget.value)}>
          {listed.map((id) => (
            <option value={String(id)} selected={id === rowId}>
              {"row " + id}
            </option>
          ))}
        </select>
      </label>
      <span class="muted">
        {count(total)} carried rows in “{active.name}”{total > ids.length ? ", the first " + count(ids.length) + " listed" : ""}.
      </span>{" "}
      {nTest ? (
        <form
          class="whatif-any-row"
          onSubmit={(e) => {
            e.preventDefault();
            const n = Number(typed);
            if (typed !== "" && Number.isInteger(n) && n >= 0 && n < nTest) onPick(n);
          }}
        >
          <label>
            or any test row{" "}
            <input type="number" name="row-id" min={0} max={nTest - 1} step={1} value={typed} onInput={(e) => setTyped(e.currentTarget.value)} />
          </label>{" "}
          <button type="submit">Load</button>
        </form>
      ) : null}
    </div>
  );
}

function StaticView({ table, active, rowId, onPick }) {
  const row = rowId === null ? null : carriedRow(table, rowId);
  return (
    <div data-testid="whatif-static">
      <Warn>
        This page is not connected to the audit's model: it was opened as a file or inside Kubeflow. To edit a row and see
        the model's prediction, its explanation and counterfactuals change, serve the audit with <code>{GO_LIVE}</code> and
        open the URL it prints.
      </Warn>
      {table.n ? <RowPicker table={table} active={active} rowId={rowId} onPick={onPick} nTest={0} /> : null}
      {row ? (
        <Table
          header={["Feature", "Value"]}
          rows={[
            ...Object.entries(row.features).map(([f, v]) => [f, show(v)]),
            ["true value", show(row.y_true)],
            ["predicted", show(row.y_pred)],
          ]}
          testid="whatif-row"
        />
      ) : null}
    </div>
  );
}

function Prediction({ info, base, answer, sent }) {
  if (!answer) return null;
  const classes = answer.classes || [];
  const proba = answer.probabilities ? answer.probabilities[0] : null;
  const predicted = answer.predictions[0];
  return (
    <section data-testid="whatif-prediction" data-row={JSON.stringify(sent)} data-prediction={JSON.stringify(predicted)}>
      <h3>Prediction</h3>
      <p>
        The model predicts <strong data-testid="whatif-predicted">{show(predicted)}</strong>
        {base && base.y_pred !== undefined ? " (row " + base.row_id + " as it is: " + show(base.y_pred) + ")" : ""}.
      </p>
      {proba ? (
        <div class="table-wrap">
          <table data-testid="whatif-probabilities">
            <thead>
              <tr>
                <th scope="col" class="text">
                  Class
                </th>
                <th scope="col">probability</th>
                <th scope="col">row as it is</th>
              </tr>
            </thead>
            <tbody>
              {classes.map((c, k) => (
                <tr>
                  <th scope="row" class="text">
                    {String(c)}
                  </th>
                  <td data-value={String(proba[k])}>{fmt(proba[k])}</td>
                  <td>{base && base.probabilities ? fmt(base.probabilities[k]) : "n/a"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : info.task_type === "regression" ? null : (
        <Note>The model gives no probabilities (no predict_proba).</Note>
      )}
    </section>
  );
}

function Explanation({ info, answer, values }) {
  if (!answer) return null;
  const label = explainedLabel(info, answer);
  const contributions = answer.rows[0][label] || {};
  const rows = Object.entries(contributions)
    .map(([feature, value]) => ({ feature, value }))
    .sort((a, b) => Math.abs(b.value ?? 0) - Math.abs(a.value ?? 0));
  const expected = answer.expected_values ? answer.expected_values[label] : null;
  return (
    <section data-testid="whatif-explanation-section">
      <h3>Local explanation of the edited row</h3>
      <Note>
        {answer.method === "mimic"
          ? "The explanation step's mimic (a LightGBM surrogate trained to imitate the model, fitted again on the run's seeded rows)"
          : "The explanation step's exact explainer (" + answer.method + " SHAP)"}
        : each feature's contribution to {label === "output" ? "the prediction" : "the score of " + label}
        {expected !== null && expected !== undefined ? ", from the expected value " + fmt(expected) : ""}.
      </Note>
      <Table
        header={["Feature", "value", "contribution"]}
        rows={rows.map((r) => [r.feature, show(values[r.feature]), r.value])}
        testid="whatif-explanation"
      />
      <Chart spec={contributionSpec(rows, label)} label={"Contributions of each feature to " + label + " for the edited row"} />
    </section>
  );
}

function Counterfactuals({ info, answer, sent, features }) {
  if (!answer) return null;
  const cfs = answer.counterfactuals;
  const moved = new Set(cfs.flatMap((c) => c.changes.map((ch) => ch.feature)));
  const columns = features.filter((f) => moved.has(f));
  const held = (answer.held_fixed || []).filter((h) => h.reason !== "not in features_to_vary");
  return (
    <div>
      <p class="muted" data-testid="whatif-cf-status">
        {answer.status.startsWith("already")
          ? "The edited row is " + answer.status + ": nothing to search."
          : count(answer.valid) + " valid counterfactuals of " + count(answer.requested) + " asked for (" + count(answer.found) + " found, each checked with the model)."}{" "}
        Aim: {answer.aim}.{held.length ? " Held fixed as in the run: " + held.map((h) => h.feature + " (" + h.reason + ")").join(", ") + "." : ""}
      </p>
      {cfs.length ? (
        <div class="table-wrap">
          <table data-testid="whatif-counterfactuals" class="counterfactuals">
            <caption class="muted">The edited row first, then each counterfactual: changed values are marked “from → to”.</caption>
            <thead>
              <tr>
                <th scope="col" class="text">
                  Row
                </th>
                <th scope="col" class="text">
                  predicted
                </th>
                {columns.map((f) => (
                  <th scope="col" class="text">
                    {f}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              <tr>
                <th scope="row" class="text">
                  edited row
                </th>
                <td class="text">{show(answer.prediction)}</td>
                {columns.map((f) => (
                  <td class="text">{show(sent[f])}</td>
                ))}
              </tr>
              {cfs.map((c, k) => {
                const changes = new Map(c.changes.map((ch) => [ch.feature, ch]));
                return (
                  <tr data-counterfactual={JSON.stringify(c.features)}>
                    <th scope="row" class="text">
                      counterfactual {k + 1}
                    </th>
                    <td class={"text" + (same(c.prediction, answer.prediction) ? "" : " changed")}>{show(c.prediction)}</td>
                    {columns.map((f) =>
                      changes.has(f) ? (
                        <td class="text changed">{show(changes.get(f).from) + " → " + show(changes.get(f).to)}</td>
                      ) : (
                        <td class="text">{show(c.features[f])}</td>
                      ),
                    )}
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      ) : null}
    </div>
  );
}

function LiveView({ live, table, active, rowId, onPick }) {
  const info = live.info;
  const specs = info.features;
  const [base, setBase] = useState(null); // the test row as it is
  const [texts, setTexts] = useState({}); // numeric inputs as typed
  const [values, setValues] = useState(null); // the edited row: {feature: value}
  const [predicted, setPredicted] = useState(null);
  const [explained, setExplained] = useState(null);
  const [cf, setCf] = useState(null);
  const [sent, setSent] = useState(null); // the row the shown answers are for
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(0);
  const [cfBusy, setCfBusy] = useState(false);
  const ask = useRef(0);

  const track = (promise) => {
    setBusy((b) => b + 1);
    return promise.finally(() => setBusy((b) => b - 1));
  };

  // A new row: its values from the server (exact, for any test row).
  useEffect(() => {
    if (rowId === null) return;
    let current = true;
    setError(null);
    track(live.row(rowId))
      .then((row) => {
        if (!current) return;
        const start = Object.fromEntries(info.model_features.map((f) => [f, row.features[f]]));
        setBase(row);
        setValues(start);
        setTexts(Object.fromEntries(specs.filter((s) => s.kind === "numeric").map((s) => [s.name, start[s.name] === null ? "" : String(start[s.name])])));
        setCf(null);
      })
      .catch((err) => current && setError(err.message));
    return () => {
      current = false;
    };
  }, [rowId]);

  const invalid = specs.filter((s) => s.kind === "numeric" && texts[s.name] !== undefined && texts[s.name] !== "" && !Number.isFinite(Number(texts[s.name])));
  const empty = specs.filter((s) => s.kind === "numeric" && !s.missing && texts[s.name] === "");

  // Every edit: prediction and explanation of the edited row (the latest edit wins).
  useEffect(() => {
    if (!values || invalid.length || empty.length) return undefined;
    const mine = ++ask.current;
    const row = { ...values };
    const timer = setTimeout(() => {
      setError(null);
      const work = [live.predict([row])];
      if (info.available.explain) work.push(live.explain([row]));
      track(Promise.all(work))
        .then(([p, e]) => {
          if (mine !== ask.current) return;
          setPredicted(p);
          setExplained(e || null);
          setSent(row);
        })
        .catch((err) => mine === ask.current && setError(err.message));
    }, DEBOUNCE_MS);
    return () => clearTimeout(timer);
  }, [values]);

  const edit = (name, value) => {
    setValues((v) => ({ ...v, [name]: value }));
    setCf(null);
  };
  const onNumber = (spec) => (text) => {
    setTexts((t) => ({ ...t, [spec.name]: text }));
    const n = Number(text);
    if (text === "") edit(spec.name, null);
    else if (Number.isFinite(n)) edit(spec.name, n);
  };
  const searchCf = () => {
    const row = { ...values };
    setCfBusy(true);
    setError(null);
    live
      .counterfactuals(row, rowId)
      .then((answer) => setCf({ answer, row }))
      .catch((err) => setError(err.message))
      .finally(() => setCfBusy(false));
  };
  const reset = () => {
    if (!base) return;
    const start = Object.fromEntries(info.model_features.map((f) => [f, base.features[f]]));
    setValues(start);
    setTexts(Object.fromEntries(specs.filter((s) => s.kind === "numeric").map((s) => [s.name, start[s.name] === null ? "" : String(start[s.name])])));
    setCf(null);
  };

  const changed = values && base ? info.model_features.filter((f) => !same(values[f], base.features[f])) : [];
  return (
    <div data-testid="whatif-live" data-busy={busy > 0 || cfBusy ? "1" : "0"}>
      <Note>
        Live: the audit's model answers for every edit (run {info.run_id}). Predictions, explanations and counterfactuals of
        the edited row are computed by the server with the audit's own model, explainer and search.
      </Note>
      <RowPicker table={table} active={active} rowId={rowId} onPick={onPick} nTest={info.n_test} />
      {error ? (
        <p class="warn" role="alert" data-testid="whatif-error">
          {error}
        </p>
      ) : null}
      {invalid.length || empty.length ? (
        <p class="warn" role="alert">
          {[...invalid.map((s) => s.name + ": not a number"), ...empty.map((s) => s.name + ": give a value (the data has no missing " + s.name + ")")].join("; ")}
        </p>
      ) : null}
      {values ? (
        <div class="grid">
          <div>
            <h3>Features of row {rowId}</h3>
            <p class="muted" data-testid="whatif-changed">
              {changed.length ? "Changed: " + changed.join(", ") + "." : "No feature changed yet."}{" "}
              <button type="button" onClick={reset} disabled={!changed.length} data-testid="whatif-reset">
                Reset
              </button>
            </p>
            <form class="whatif-form" data-testid="whatif-form" onSubmit={(e) => e.preventDefault()}>
              {specs.map((s, i) => (
                <FeatureInput
                  spec={s}
                  position={i}
                  value={values[s.name]}
                  text={texts[s.name] ?? ""}
                  changed={changed.includes(s.name)}
                  onNumber={onNumber(s)}
                  onChoice={(v) => edit(s.name, v)}
                />
              ))}
            </form>
          </div>
          <div aria-live="polite">
            <Prediction info={info} base={base} answer={predicted} sent={sent} />
            <Explanation info={info} answer={explained} values={sent || values} />
          </div>
        </div>
      ) : (
        <Note>Loading the row…</Note>
      )}
      {values && info.available.counterfactuals ? (
        <section>
          <h3>Counterfactuals of the edited row</h3>
          <Note>
            The counterfactual step's {info.counterfactual.engine === "dice" ? "dice-ml (" + info.counterfactual.method + ")" : "batched random search"}{" "}
            with the run's options ({info.counterfactual.total_CFs} asked for).
          </Note>
          <button type="button" data-testid="whatif-cf-run" onClick={searchCf} disabled={cfBusy || invalid.length > 0 || empty.length > 0}>
            {cfBusy ? "Searching…" : "Find counterfactuals"}
          </button>
          {cf ? <Counterfactuals info={info} answer={cf.answer} sent={cf.row} features={info.model_features} /> : null}
        </section>
      ) : null}
    </div>
  );
}

export default function WhatIf() {
  const ctx = useContext(Ctx);
  const live = useLive();
  const { table, active } = ctx;
  const first = useMemo(() => {
    for (let i = 0; i < table.n; i++) if (active.mask[i]) return table.rowId[i];
    return table.n ? table.rowId[0] : null;
  }, [table, active]);
  const [picked, setPicked] = useState(null);
  const rowId = picked !== null ? picked : ctx.rowId !== null && ctx.rowId !== undefined ? ctx.rowId : live ? (first ?? 0) : first;
  const onPick = (id) => {
    setPicked(id);
    if (ctx.setRowId) ctx.setRowId(id);
  };
  return (
    <section aria-labelledby="whatif-title">
      <h2 id="whatif-title">What-if</h2>
      {live ? (
        <LiveView live={live} table={table} active={active} rowId={rowId} onPick={onPick} />
      ) : live === undefined && isServed() ? (
        <Note>Looking for the live server…</Note>
      ) : (
        <StaticView table={table} active={active} rowId={rowId} onPick={onPick} />
      )}
    </section>
  );
}
