import { useContext, useMemo, useState } from "preact/hooks";
import { Ctx } from "../context.js";
import { Chart } from "../chart.jsx";
import { count, fmt } from "../format.js";
import { Note, Scope, Select, Table, Warn } from "../ui.jsx";

const CONFIG = {
  font: "DejaVu Sans, sans-serif",
  axis: { labelFontSize: 10, titleFontSize: 11 },
  view: { stroke: null },
};
const WIDTH = 420;
const MISSING = "(missing)";
// Tables and their chart next to each other when the page is wide enough.
const SIDE = { display: "flex", flexWrap: "wrap", gap: "0 1.5rem", alignItems: "flex-start" };

// What the page's rows are, for the scope of the figures computed from them.
export function carriedText(table) {
  return table.sampled
    ? "the page carries a seeded sample of " + count(table.n) + " of the " + count(table.of) + " test rows"
    : "the page carries all " + count(table.of) + " test rows";
}

// The table rows (positions) of `mask` with a local importance (a null entry: not explained).
function explainedRows(table, mask) {
  const li = table.localImportance;
  if (!li) return [];
  const cols = Object.values(li.features);
  const out = [];
  for (let i = 0; i < table.n; i++) {
    if (mask[i] && cols.some((c) => !Number.isNaN(c[i]))) out.push(i);
  }
  return out;
}

// Mean |contribution| per feature over `rows`, most important first.
export function meanAbsolute(li, rows) {
  return Object.entries(li.features)
    .map(([feature, col]) => {
      let sum = 0;
      let n = 0;
      for (const i of rows) {
        const v = col[i];
        if (!Number.isNaN(v)) {
          sum += Math.abs(v);
          n += 1;
        }
      }
      return { feature, importance: n ? sum / n : null };
    })
    .sort((a, b) => (b.importance ?? -1) - (a.importance ?? -1));
}

// The explanation step's own figure for a bundle cohort (computed on all its rows), if any.
function fullDataFigure(ex, cohort) {
  const view = cohort && cohort.source !== "editor" ? cohort.view : null;
  if (!view) return null;
  if (view.kind === "all") {
    return { count: ex.n_rows, importance: ex.global.map((g) => [g.feature, g.importance]) };
  }
  const entry =
    view.kind === "cohort"
      ? (ex.cohorts || []).find((c) => c.name === view.name)
      : view.kind === "group"
        ? (ex.sensitive_groups || []).find((g) => g.feature + " = " + g.group === view.name)
        : null;
  if (!entry || !entry.importance) return null;
  const importance = Object.entries(entry.importance).sort((a, b) => (b[1] ?? -1) - (a[1] ?? -1));
  return { count: entry.count, importance };
}

// Mean |contribution| per feature: the page's figure and, when known, the step's full-data one.
function barsSpec(figure, full) {
  const page = figure.filter((r) => r.importance !== null).map((r) => ({ label: r.feature, value: r.importance, source: "in the page" }));
  const rows = full ? [...page, ...full.importance.filter(([, v]) => v !== null).map(([f, v]) => ({ label: f, value: v, source: "full data" }))] : page;
  const sources = full ? ["in the page", "full data"] : ["in the page"];
  return {
    config: CONFIG,
    width: WIDTH,
    height: { step: full ? 9 : 16 },
    data: { values: rows },
    mark: { type: "bar" },
    encoding: {
      y: { field: "label", type: "nominal", sort: page.map((r) => r.label), title: "feature", axis: { labelLimit: 220 } },
      yOffset: { field: "source", type: "nominal", sort: sources },
      x: { field: "value", type: "quantitative", title: "mean |contribution|", axis: { labelOverlap: true, tickCount: 5 } },
      color: {
        field: "source",
        type: "nominal",
        title: null,
        scale: { domain: sources, range: ["#4c78a8", "#9ecae9"] },
        legend: full ? { orient: "bottom" } : null,
      },
      tooltip: [
        { field: "label", type: "nominal", title: "feature" },
        { field: "source", type: "nominal", title: "figure" },
        { field: "value", type: "quantitative", title: "mean |contribution|", format: ".4g" },
      ],
    },
  };
}

// A value as the charts show it: missing ones as their own category.
const shown = (v) => (v === null || v === undefined ? MISSING : v);

// Feature value against its contribution, one point per explained row, coloured by a feature.
function dependenceSpec(table, rows, feature, color) {
  const f = table.feature(feature);
  const x = table.column(feature);
  const y = table.localImportance.features[feature];
  const c = color ? table.column(color) : null;
  const cf = color ? table.feature(color) : null;
  const numericX = f.kind === "numeric";
  const points = [];
  let dropped = 0;
  for (const i of rows) {
    if (Number.isNaN(y[i])) continue;
    if (numericX && (x[i] === null || x[i] === undefined)) {
      dropped += 1;
      continue;
    }
    // A fixed jitter per row (the golden ratio's fractional parts), so the strip is the same every time.
    const p = { row: table.rowId[i], x: numericX ? x[i] : shown(x[i]), y: y[i], jitter: ((i * 0.6180339887) % 1) - 0.5 };
    if (c) p.c = cf.kind === "numeric" ? c[i] : shown(c[i]);
    points.push(p);
  }
  if (!points.length) return { spec: null, dropped };
  const yEnc = { field: "y", type: "quantitative", title: "contribution of " + feature };
  const tooltip = [
    { field: "row", type: "quantitative", title: "row" },
    { field: "x", type: numericX ? "quantitative" : "nominal", title: feature },
    { field: "y", type: "quantitative", title: "contribution", format: ".4g" },
  ];
  let color_ = { value: "#4c78a8" };
  if (c) {
    const numericC = cf.kind === "numeric";
    color_ = numericC
      ? { field: "c", type: "quantitative", title: color, scale: { scheme: "viridis" } }
      : {
          field: "c",
          type: "nominal",
          title: color,
          scale: cf.categories
            ? { domain: [...cf.categories, ...(points.some((q) => q.c === MISSING) ? [MISSING] : [])] }
            : undefined,
          legend: { symbolLimit: 24, labelLimit: 160 },
        };
    tooltip.push({ field: "c", type: numericC ? "quantitative" : "nominal", title: color });
  }
  const base = { config: CONFIG, data: { values: points } };
  if (numericX || f.kind === "datetime") {
    return {
      dropped,
      spec: {
        ...base,
        width: WIDTH,
        height: 260,
        mark: { type: "point", filled: true, size: 22, opacity: 0.7 },
        encoding: {
          x: { field: "x", type: numericX ? "quantitative" : "temporal", title: feature, scale: { zero: false } },
          y: yEnc,
          color: color_,
          tooltip,
        },
      },
    };
  }
  // A categorical feature: a box per category (min to max) and the rows as a jittered strip.
  const order = [...(f.categories || []), MISSING].filter((v) => points.some((p) => p.x === v));
  const xEnc = { field: "x", type: "nominal", title: feature, sort: order, axis: { labelAngle: -40, labelLimit: 140 } };
  return {
    dropped,
    spec: {
      ...base,
      width: { step: Math.max(18, Math.min(60, Math.floor(WIDTH / order.length))) },
      height: 260,
      layer: [
        {
          mark: { type: "boxplot", extent: "min-max", opacity: 0.35, color: "#888", median: { color: "#222" } },
          encoding: { x: xEnc, y: yEnc },
        },
        {
          mark: { type: "point", filled: true, size: 16, opacity: 0.7 },
          encoding: {
            x: xEnc,
            xOffset: { field: "jitter", type: "quantitative", scale: { domain: [-0.9, 0.9] } },
            y: yEnc,
            color: color_,
            tooltip,
          },
        },
      ],
    },
  };
}

function localSpec(entries) {
  const rows = entries.map(([f, v]) => ({ label: f, value: v, sign: v >= 0 ? "raises" : "lowers" }));
  return {
    config: CONFIG,
    width: WIDTH,
    height: Math.max(40, 16 * rows.length),
    data: { values: rows },
    mark: "bar",
    encoding: {
      y: { field: "label", type: "nominal", sort: rows.map((r) => r.label), title: "feature", axis: { labelLimit: 220 } },
      x: { field: "value", type: "quantitative", title: "contribution", axis: { labelOverlap: true, tickCount: 5 } },
      color: {
        field: "sign",
        type: "nominal",
        title: "the feature",
        scale: { domain: ["raises", "lowers"], range: ["#4c78a8", "#c0392b"] },
      },
      tooltip: [
        { field: "label", type: "nominal", title: "feature" },
        { field: "value", type: "quantitative", title: "contribution", format: ".4g" },
      ],
    },
  };
}

function Method({ ex }) {
  const rows = [
    ["Method", ex.method + (ex.explainer ? " (" + ex.explainer + ")" : "")],
    ["Model explained", ex.estimator || "n/a"],
  ];
  if (ex.fidelity) {
    rows.push(["Fidelity", "the mimic's " + ex.fidelity.metric + " against the model's predictions: " + fmt(ex.fidelity.value)]);
  }
  if (ex.background) {
    rows.push(["Background", count(ex.background.size) + " train rows (seed " + ex.background.seed + ")"]);
  }
  if (ex.surrogate_rows) {
    rows.push(["Surrogate trained on", count(ex.surrogate_rows.size) + " train rows (seed " + ex.surrogate_rows.seed + ")"]);
  }
  rows.push(["Rows explained", count(ex.n_rows) + (ex.rows ? " (" + ex.rows.selection + " of the test rows)" : "")]);
  return (
    <div>
      <Table header={["Explanation", "details"]} rows={rows} testid="explanation-method" />
      {(ex.notes || []).map((n) => (
        <Warn>{n}</Warn>
      ))}
    </div>
  );
}

export default function Importance() {
  const ctx = useContext(Ctx);
  const { doc, table, active } = ctx;
  const ex = doc.explanation;
  const li = table.localImportance;
  const rows = useMemo(() => explainedRows(table, active.mask), [table, active]);
  const figure = useMemo(() => (li ? meanAbsolute(li, rows) : []), [li, rows]);
  const features = li ? Object.keys(li.features) : [];
  const [depFeature, setDepFeature] = useState(null);
  const [depColor, setDepColor] = useState("");
  if (!ex) {
    return (
      <section>
        <h2>Feature importance</h2>
        <Note>The audit ran no explanation step: no feature importance.</Note>
      </section>
    );
  }
  const full = fullDataFigure(ex, active);
  // Gather's label: a class, "output" (regression) or "the predicted class" (multiclass: each row's own).
  const what = !li
    ? ""
    : doc.task_type === "regression"
      ? "contributions to the prediction"
      : doc.task_type === "multiclass_classification"
        ? "contributions to each row's predicted class"
        : "contributions to class " + li.label;
  const carried = table.sampled ? "sampled" : "test";
  const feature = depFeature && features.includes(depFeature) ? depFeature : figure.length ? figure[0].feature : null;
  const colorBy = depColor && table.hasColumn(depColor) ? depColor : "";
  const dep = feature && rows.length ? dependenceSpec(table, rows, feature, colorBy) : { spec: null, dropped: 0 };

  // The row picker: the active cohort's explained rows; the selected row is shared with the
  // counterfactuals view.
  const yTrue = table.n ? table.column("y_true") : [];
  const yPred = table.n ? table.column("y_pred") : [];
  const options = rows.map((i) => ({
    value: table.rowId[i],
    label: "row " + table.rowId[i] + " (true " + fmt(yTrue[i]) + ", predicted " + fmt(yPred[i]) + ")",
  }));
  const picked = rows.find((i) => table.rowId[i] === ctx.rowId);
  const at = picked !== undefined ? picked : rows.length ? rows[0] : null;
  const local =
    at === null
      ? []
      : Object.entries(li.features)
          .map(([f, col]) => [f, col[at]])
          .filter(([, v]) => !Number.isNaN(v))
          .sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));

  return (
    <section>
      <h2>Feature importance: {active.name}</h2>
      <Method ex={ex} />
      <h3>Global importance in this cohort</h3>
      {!li ? (
        <Note>
          The page carries no local importances (a bundle gathered before they were carried, or the explanation step
          explained none of the carried rows): only the step's full-data figures.
        </Note>
      ) : rows.length ? (
        <p class="scope muted" data-testid="importance-scope">
          Mean absolute {what} over the {count(rows.length)} explained rows of the {count(active.size)} {carried} rows in
          this cohort ({carriedText(table)}).
        </p>
      ) : (
        <Note>
          {active.rowsKnown === false
            ? "The page cannot tell which of its rows belong to this cohort (a column it does not carry)"
            : "None of the " + count(active.size) + " " + carried + " rows of this cohort was explained"}
          : no importance can be computed in the page for it{full ? "; the step's full-data figure is shown" : ""}.
        </Note>
      )}
      <div class="side-by-side" style={SIDE}>
        {li && rows.length ? (
          <Table
            header={["Feature", "mean |contribution|"]}
            rows={figure.map((r) => [r.feature, r.importance])}
            testid="importance-table"
            caption={"In the page: " + count(rows.length) + " explained rows"}
          />
        ) : null}
        {full ? (
          <Table
            header={["Feature", "mean |contribution| (full data)"]}
            rows={full.importance}
            testid="importance-full-data"
            caption={
              "Full data: the explanation step's figure over all " +
              count(full.count) +
              " explained test rows of the cohort" +
              (doc.task_type === "regression" ? "" : " (averaged over classes)") +
              ", not from the page's rows"
            }
          />
        ) : null}
        {li && rows.length ? (
          <Chart
            spec={barsSpec(figure, full)}
            label={
              "Mean absolute contribution per feature over the explained rows of " +
              active.name +
              (full ? ", beside the explanation step's full-data figure" : "")
            }
          />
        ) : null}
      </div>
      {li && rows.length ? (
        <div>
          <h3>Dependence: a feature's value and its contribution</h3>
          <div class="controls">
            <Select
              label="Feature"
              name="dependence-feature"
              value={feature}
              options={figure.map((r) => r.feature)}
              onChange={setDepFeature}
            />{" "}
            <Select
              label="Colour by"
              name="dependence-color"
              value={colorBy}
              options={[{ value: "", label: "none" }, ...table.features.map((f) => f.name)]}
              onChange={setDepColor}
            />
          </div>
          <Chart
            spec={dep.spec}
            label={
              "Dependence plot: value of " +
              feature +
              " against its contribution for the explained rows of " +
              active.name +
              (colorBy ? ", coloured by " + colorBy : "")
            }
            testid="dependence-chart"
          />
          <p class="scope muted">
            One point per explained row of this cohort ({count(rows.length)} rows; {carriedText(table)})
            {dep.dropped ? "; " + count(dep.dropped) + " rows with a missing " + feature + " are not drawn" : ""}.
          </p>
        </div>
      ) : null}
      <h3>Local importance of one row</h3>
      {at === null ? (
        <Note>No explained row in this cohort among the page's rows.</Note>
      ) : (
        <div>
          <div class="controls">
          <Select
            label="Row"
            name="row"
            value={table.rowId[at]}
            options={options}
            onChange={(v) => ctx.setRowId(Number(v))}
          />
          <span class="muted"> {count(options.length)} explained rows of this cohort in the page</span>
          </div>
          <p class="muted">
            Row {table.rowId[at]}: true value {fmt(yTrue[at])}, predicted {fmt(yPred[at])}; {what}, largest first.
          </p>
          <div style={SIDE}>
            <Table
              header={["Feature", "value", "contribution"]}
              rows={local.map(([f, v]) => [f, table.hasColumn(f) ? fmt(table.column(f)[at]) : "n/a", v])}
              testid="local-importance"
            />
            <Chart spec={localSpec(local)} label={"Contribution of each feature for row " + table.rowId[at]} />
          </div>
        </div>
      )}
    </section>
  );
}
