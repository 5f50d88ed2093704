import { useContext, useMemo, useState } from "preact/hooks";
import { Ctx } from "../context.js";
import { Table, Scope, Section, Note, Warn } from "../ui.jsx";
import { count, fmt as fmtFigure } from "../format.js";
import { classificationMetrics, confusionMatrix, metricsFromCounts, pick, regressionMetrics, thresholded } from "../metrics.js";
import { LabelledChart, binIndex, linspaceEdges } from "./DataExplorer.jsx";

// Model overview: the run's facts, the metrics of the compared cohorts side by side, the
// active cohort's probability (binary) or residual (regression) distribution, a confusion
// matrix per compared cohort, and for a binary classifier the metrics at any threshold.

const CONFIG = {
  font: "DejaVu Sans, sans-serif",
  axis: { labelFontSize: 10, titleFontSize: 11 },
  legend: { labelFontSize: 10, titleFontSize: 11 },
  view: { stroke: null },
};
const WIDTH = 440;
const THRESHOLD_METRICS = [
  "accuracy_score",
  "precision_score",
  "recall_score",
  "f1_score",
  "selection_rate",
  "false_positive_rate",
  "false_negative_rate",
];

// Bundles gathered before these options existed: their defaults.
const minGroupSize = (doc) => (doc.min_group_size !== undefined ? doc.min_group_size : 30);
function desiredOutcome(doc) {
  const d = doc.desired_outcome || "increase";
  const word = d === "increase" ? "higher" : "lower";
  const text =
    doc.task_type === "binary_classification"
      ? "a " + word + " probability of " + doc.positive_label
      : doc.task_type === "regression"
        ? "a " + word + " " + doc.target_column
        : d + " (a multiclass model has no positive label)";
  return text + " (desired_outcome: " + d + ")";
}

// A full-data figure's scope.
const fullScope = (n) => (n ? "all " + count(n) + " test rows (full data)" : "no test rows (full data)");

// The positions (in the table) of a cohort's carried rows.
export function rowsOf(cohort, n) {
  const index = [];
  for (let i = 0; i < n; i++) if (cohort.mask[i]) index.push(i);
  return index;
}

function runFacts(doc, table) {
  const data = doc.data || {};
  const sample = data.sample || {};
  const facts = [
    ["Task", doc.task_type],
    ["Target", doc.target_column + (doc.positive_label !== null && doc.positive_label !== undefined ? " (positive class: " + doc.positive_label + ")" : "")],
    ["Model", doc.model.class + " (sha256 " + String(doc.model.sha256).slice(0, 16) + "…)"],
    [
      "Test rows",
      count(data.n_test) +
        " (all used)" +
        (sample.size !== undefined && sample.size !== data.n_test
          ? "; sample for per-row analyses: " + count(sample.size) + " (seed " + sample.seed + ")"
          : ""),
    ],
    [
      "Rows carried in this page",
      table.present
        ? table.sampled
          ? count(table.n) + " of the " + count(table.of) + " test rows, a seeded sample (seed " + table.seed + "): figures computed in the page say so"
          : "all " + count(table.of) + " test rows"
        : "none (a page rendered before it carried rows): only the bundle's figures are shown",
    ],
    ["Train rows", count(data.n_train)],
    ["Desired outcome", desiredOutcome(doc)],
    [
      "Fairness groups",
      "groups of fewer than " + minGroupSize(doc) + " test rows are shown, flagged and left out of differences and ratios (min_group_size)",
    ],
    ["Run id", doc.run_id],
    ["Created", doc.created_at + " by " + doc.producer],
  ];
  if (doc.pipeline_run) {
    facts.push(["Pipeline run", Object.entries(doc.pipeline_run).map(([k, v]) => k.replace("_", " ") + ": " + v).join("; ")]);
  }
  facts.push([
    "Insights",
    Object.keys(doc.insights || {}).length ? Object.keys(doc.insights).join(", ") : "model overview, fairness and data analysis only",
  ]);
  return facts;
}

// A cohort's metrics: the bundle's full-data figures when it has them, else computed on its
// carried rows (null when the page carries none).
function cohortFigures(doc, table, cohort) {
  if (cohort.view && cohort.view.metrics) return { full: true, count: cohort.view.count, metrics: cohort.view.metrics };
  if (!table.present) return null;
  const index = rowsOf(cohort, table.n);
  const yt = pick(table.column("y_true"), index);
  const yp = pick(table.column("y_pred"), index);
  let metrics;
  if (doc.task_type === "regression") {
    metrics = regressionMetrics(yt, yp);
  } else {
    const binary = doc.task_type === "binary_classification";
    metrics = classificationMetrics(yt, yp, {
      labels: doc.classes,
      positive: binary ? doc.positive_label : null,
      probability: binary && table.column("probability") ? pick(table.column("probability"), index) : null,
    });
  }
  return { full: false, count: index.length, metrics };
}

// The blues of the old chart's cells: light for few rows, dark for many; the text black or
// white, whichever contrasts more with the cell (WCAG's relative luminance).
const BLUES = [
  [247, 251, 255],
  [198, 219, 239],
  [107, 174, 214],
  [33, 113, 181],
  [8, 48, 107],
];
function shade(share) {
  const x = Math.min(1, Math.max(0, share)) * (BLUES.length - 1);
  const i = Math.min(BLUES.length - 2, Math.floor(x));
  const rgb = BLUES[i].map((c, k) => Math.round(c + (BLUES[i + 1][k] - c) * (x - i)));
  const lin = rgb.map((c) => {
    const v = c / 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  });
  const lum = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
  const white = 1.05 / (lum + 0.05);
  const black = (lum + 0.05) / 0.05;
  return { background: "rgb(" + rgb.join(",") + ")", color: white > black ? "#fff" : "#000" };
}

function percent(n, total) {
  if (!total) return "0%";
  const share = (100 * n) / total;
  if (share > 0 && share < 1) return "<1%";
  if (share > 99 && share < 100) return ">99%";
  return share.toFixed(0) + "%";
}

// A confusion matrix as a table: rows the true class, columns the predicted one, each cell
// its count and the share of its row, shaded by its count.
export function ConfusionTable({ cm, label }) {
  const max = Math.max(1, ...cm.matrix.flat());
  return (
    // Focusable: a wide matrix scrolls sideways, and the keyboard must reach it.
    <div class="table-wrap" tabIndex={0} role="region" aria-label={label}>
      <table class="confusion">
        <caption style={{ textAlign: "left" }}>rows: true class; columns: predicted class</caption>
        <thead>
          <tr>
            <th scope="col" class="text">
              true \ predicted
            </th>
            {cm.labels.map((l) => (
              <th scope="col" class="num">
                {String(l)}
              </th>
            ))}
            <th scope="col" class="num">
              rows
            </th>
          </tr>
        </thead>
        <tbody>
          {cm.matrix.map((row, i) => {
            const total = row.reduce((s, v) => s + v, 0);
            return (
              <tr>
                <th scope="row" class="text">
                  {String(cm.labels[i])}
                </th>
                {row.map((v) => (
                  <td class="num" style={{ ...shade(v / max), whiteSpace: "nowrap" }}>
                    {count(v)} ({percent(v, total)})
                  </td>
                ))}
                <td class="num">{count(total)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

// Rows per probability bin (20 bins over [0, 1], numpy's) and true class, with the threshold.
function probabilitySpec(doc, probability, yTrue, threshold) {
  const edges = linspaceEdges(0, 1, 20);
  const classes = (doc.classes || []).map(String);
  const cells = new Map();
  let n = 0;
  for (let i = 0; i < probability.length; i++) {
    const p = probability[i];
    if (p === null || p === undefined) continue;
    const b = binIndex(p, edges, true);
    if (b < 0) continue;
    const key = b + "|" + String(yTrue[i]);
    cells.set(key, (cells.get(key) || 0) + 1);
    n++;
  }
  if (!n) return null;
  const values = [];
  for (const [key, rows] of cells) {
    const [b, cls] = key.split(/\|(.*)/s);
    values.push({ x0: edges[+b], x1: edges[+b + 1], cls, rows });
  }
  return {
    width: WIDTH,
    height: 180,
    layer: [
      {
        data: { values },
        mark: { type: "bar", stroke: "#fff", strokeWidth: 0.5 },
        encoding: {
          x: { field: "x0", type: "quantitative", bin: "binned", title: "predicted probability of " + doc.positive_label, scale: { domain: [0, 1] } },
          x2: { field: "x1" },
          y: { field: "rows", type: "quantitative", title: "rows", stack: "zero" },
          color: { field: "cls", type: "nominal", title: "true class", sort: classes, legend: { orient: "bottom" } },
          tooltip: [
            { field: "x0", title: "from", type: "quantitative", format: ".2f" },
            { field: "x1", title: "to", type: "quantitative", format: ".2f" },
            { field: "cls", title: "true class" },
            { field: "rows", type: "quantitative" },
          ],
        },
      },
      {
        data: { values: [{ t: threshold }] },
        mark: { type: "rule", color: "#c0392b", strokeDash: [4, 3], strokeWidth: 1.5 },
        encoding: { x: { field: "t", type: "quantitative" } },
      },
    ],
    config: CONFIG,
  };
}

function histogramSpec(edges, counts, title) {
  if (!counts.some((c) => c > 0)) return null;
  return {
    width: WIDTH,
    height: 160,
    data: { values: counts.map((rows, i) => ({ x0: edges[i], x1: edges[i + 1], rows })) },
    mark: { type: "rect", color: "#4c78a8" },
    encoding: {
      x: { field: "x0", type: "quantitative", bin: "binned", title },
      x2: { field: "x1" },
      y: { field: "rows", type: "quantitative", title: "rows" },
      tooltip: [
        { field: "x0", title: "from", type: "quantitative", format: ".4~g" },
        { field: "x1", title: "to", type: "quantitative", format: ".4~g" },
        { field: "rows", type: "quantitative" },
      ],
    },
    config: CONFIG,
  };
}

// Predicted against true value of each carried row, with the diagonal y = x.
function predictedTrueSpec(doc, yTrue, yPred) {
  const values = [];
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < yTrue.length; i++) {
    if (yTrue[i] === null || yPred[i] === null) continue;
    values.push({ t: yTrue[i], p: yPred[i] });
    lo = Math.min(lo, yTrue[i], yPred[i]);
    hi = Math.max(hi, yTrue[i], yPred[i]);
  }
  if (!values.length) return null;
  const scale = { domain: [lo, hi], zero: false };
  return {
    width: 320,
    height: 320,
    layer: [
      {
        data: { values },
        mark: { type: "point", filled: true, size: 16, opacity: 0.5, color: "#4c78a8" },
        encoding: {
          x: { field: "t", type: "quantitative", title: "true " + doc.target_column, scale },
          y: { field: "p", type: "quantitative", title: "predicted " + doc.target_column, scale },
          tooltip: [
            { field: "t", title: "true", type: "quantitative", format: ".4~g" },
            { field: "p", title: "predicted", type: "quantitative", format: ".4~g" },
          ],
        },
      },
      {
        data: { values: [{ x: lo, y: lo }, { x: hi, y: hi }] },
        mark: { type: "line", color: "#c0392b", strokeDash: [4, 3] },
        encoding: { x: { field: "x", type: "quantitative", scale }, y: { field: "y", type: "quantitative", scale } },
      },
    ],
    config: CONFIG,
  };
}

// np.histogram(values, bins=10): gather's residual histogram, on the carried rows.
function histogram10(values) {
  const present = values.filter((v) => v !== null && !Number.isNaN(v));
  if (!present.length) return null;
  let lo = Math.min(...present);
  let hi = Math.max(...present);
  if (lo === hi) {
    lo -= 0.5;
    hi += 0.5;
  }
  const edges = linspaceEdges(lo, hi, 10);
  const counts = new Array(10).fill(0);
  for (const v of present) counts[binIndex(v, edges, true)]++;
  return { edges, counts };
}

// A tree node's or heatmap cell's full-data error, which error analysis computed on every test row.
function errorAnalysisFigure(doc, cohort) {
  const known = cohort.node || cohort.cell;
  if (!known || known.error_rate === undefined) return "";
  const ea = doc.error_analysis || {};
  const what = ea.error_metric && ea.error_metric !== "error_rate" ? "mean absolute error" : "error rate";
  return "; on all " + count(known.count) + " test rows error analysis gives it an " + what + " of " + fmtFigure(known.error_rate);
}

function MetricsTable({ doc, table, compared, figures: all, scope }) {
  const names = (doc.model_overview && doc.model_overview.metric_names) || [];
  const columns = compared.map((c, i) => ({ cohort: c, figures: all[i] }));
  const header = [
    "Metric",
    ...columns.map(({ cohort, figures }) =>
      !figures || figures.full
        ? cohort.name
        : cohort.name + (table.sampled ? " (on " + count(figures.count) + " sampled rows)" : " (computed on its " + count(figures.count) + " rows)"),
    ),
  ];
  const value = (f, m) => (!f ? null : f.metrics[m] === undefined ? null : f.metrics[m]);
  const rows = [
    ["rows", ...columns.map(({ figures }) => (figures ? figures.count : null))],
    ...names.map((m) => [m, ...columns.map(({ figures }) => value(figures, m))]),
  ];
  return (
    <div>
      <h3>{compared.length > 1 ? "Metrics, side by side" : "Metrics: " + compared[0].name}</h3>
      <Table header={header} rows={rows} countRows={[0]} testid="metrics-table" />
      {columns.map(({ cohort, figures }) => (
        <p class="scope muted">
          {cohort.name}: {figures ? (figures.full ? fullScope(figures.count) : "computed in the page " + scope(cohort)) : "no figures (no rows carried)"}
          {figures && !figures.full ? errorAnalysisFigure(doc, cohort) : ""}
        </p>
      ))}
      <Note>
        n/a: undefined on these rows (
        {doc.task_type === "regression" ? "e.g. R² on fewer than two rows, any metric on no rows" : "e.g. precision with no predicted positive, recall with no positive row"}
        ).
      </Note>
    </div>
  );
}

function ThresholdView({ doc, table, active, scope, threshold, setThreshold }) {
  const positive = doc.positive_label;
  const labels = doc.classes || [];
  const negative = labels.find((c) => c !== positive);
  const base = useMemo(() => {
    const index = rowsOf(active, table.n).filter((i) => {
      const p = table.column("probability")[i];
      return p !== null && p !== undefined;
    });
    return {
      yTrue: pick(table.column("y_true"), index),
      yPred: pick(table.column("y_pred"), index),
      probability: pick(table.column("probability"), index),
    };
  }, [table, active]);
  const positiveAt = labels.indexOf(positive);
  const at = useMemo(() => {
    const predicted = thresholded(base.probability, threshold).map((v) => (v === 1 ? positive : negative));
    const cm = confusionMatrix(base.yTrue, predicted, labels);
    return { cm, metrics: metricsFromCounts(cm.matrix, positiveAt) };
  }, [base, threshold]);
  const model = useMemo(() => metricsFromCounts(confusionMatrix(base.yTrue, base.yPred, labels).matrix, positiveAt), [base]);
  const shown = threshold.toFixed(2);
  return (
    <div data-testid="threshold-view">
      <h3>Decision threshold: {active.name}</h3>
      <Note>
        A row is predicted {String(positive)} when its predicted probability of {String(positive)} is at least the threshold. The metrics
        and the confusion matrix below are recomputed at the threshold on the cohort's rows carried in the page; the model's own
        predictions are beside them.
      </Note>
      <div class="threshold-control">
        <label for="threshold-input">Threshold for predicting {String(positive)}</label>{" "}
        <input
          id="threshold-input"
          type="range"
          data-testid="threshold"
          min="0"
          max="1"
          step="0.01"
          value={threshold}
          aria-label={"decision threshold on the probability of " + positive}
          aria-valuetext={shown}
          onInput={(e) => setThreshold(Number(e.currentTarget.value))}
        />{" "}
        <output for="threshold-input" data-testid="threshold-value">
          {shown}
        </output>
      </div>
      <Scope cohort={active} text={scope(active)} />
      {base.yTrue.length ? (
        <div>
          <Table
            header={["Metric", "at threshold " + shown, "model's predictions"]}
            rows={[["rows", base.yTrue.length, base.yTrue.length], ...THRESHOLD_METRICS.map((m) => [m, at.metrics[m], model[m]])]}
            testid="threshold-metrics"
          />
          <h4>Confusion matrix at threshold {shown}</h4>
          <div data-testid="threshold-confusion">
            <ConfusionTable cm={at.cm} label={"confusion matrix of " + active.name + " at threshold " + shown} />
          </div>
        </div>
      ) : (
        <Note>No carried row of this cohort has a predicted probability.</Note>
      )}
    </div>
  );
}

export default function Overview() {
  const ctx = useContext(Ctx);
  const { doc, table, active, compared, scope } = ctx;
  const task = doc.task_type;
  const binary = task === "binary_classification";
  const hasProbability = binary && table.present && table.column("probability").some((p) => p !== null && p !== undefined);
  // The probability histogram shows the threshold view's threshold.
  const [threshold, setThreshold] = useState(0.5);
  // Not again when the threshold moves: only when the cohorts change.
  const figures = useMemo(() => compared.map((c) => cohortFigures(doc, table, c)), [doc, table, compared]);
  const activeRows = useMemo(() => (table.present ? rowsOf(active, table.n) : []), [table, active]);

  let distribution = null;
  if (binary && hasProbability) {
    const spec = probabilitySpec(doc, pick(table.column("probability"), activeRows), pick(table.column("y_true"), activeRows), threshold);
    distribution = (
      <div data-testid="probability-distribution">
        <h3>Predicted probability of {String(doc.positive_label)}: {active.name}</h3>
        <Scope cohort={active} text={scope(active)} />
        <LabelledChart
          spec={spec}
          label={"Histogram of the predicted probability of " + doc.positive_label + " for the rows of " + active.name + ", coloured by true class; the dashed line is the threshold " + threshold.toFixed(2)}
        />
        <Note>Bars stacked by true class; the dashed line marks the threshold ({threshold.toFixed(2)}; the model's own predictions use 0.5), set below.</Note>
      </div>
    );
  } else if (task === "regression") {
    let residuals = null;
    let residualScope = null;
    if (active.view && active.view.residuals) {
      residuals = active.view.residuals;
      residualScope = fullScope(active.view.count);
    } else if (table.present) {
      const yt = pick(table.column("y_true"), activeRows);
      const yp = pick(table.column("y_pred"), activeRows);
      residuals = histogram10(yp.map((p, i) => (p === null || yt[i] === null ? null : p - yt[i])));
      residualScope = scope(active);
    }
    distribution = (
      <div>
        <h3>Residuals: {active.name}</h3>
        {residualScope ? <p class="scope muted">{residualScope}</p> : null}
        <LabelledChart
          spec={residuals ? histogramSpec(residuals.edges, residuals.counts, "residual (predicted - true)") : null}
          label={"Histogram of the residuals (predicted minus true) of " + active.name}
        />
        {table.present ? (
          <div>
            <h3>Predicted against true value: {active.name}</h3>
            <Scope cohort={active} text={scope(active)} />
            <LabelledChart
              spec={predictedTrueSpec(doc, pick(table.column("y_true"), activeRows), pick(table.column("y_pred"), activeRows))}
              label={"Scatter of predicted against true " + doc.target_column + " for the rows of " + active.name + ", with the diagonal where they are equal"}
            />
          </div>
        ) : null}
      </div>
    );
  }

  const confusions =
    task === "regression"
      ? []
      : compared.map((c, i) => {
          const f = figures[i];
          const cm = f && f.metrics.confusion_matrix;
          return (
            <div data-testid="confusion" data-cohort={c.key} class="confusion-box" style={{ flex: "0 1 auto", minWidth: 0, maxWidth: "100%" }}>
              {compared.length > 1 ? <h4>Confusion matrix: {c.name}</h4> : <h3>Confusion matrix: {c.name}</h3>}
              <p class="scope muted">{!f ? "no figures (no rows carried)" : f.full ? fullScope(f.count) : scope(c)}</p>
              {cm && f.count ? <ConfusionTable cm={cm} label={"confusion matrix of " + c.name} /> : <Note>no rows</Note>}
            </div>
          );
        });

  return (
    <Section title="Model overview" id="model-overview">
      <Table header={["About this run", "details"]} rows={runFacts(doc, table)} testid="run-facts" class="meta" />
      {(doc.warnings || []).map((w) => (
        <Warn>{w}</Warn>
      ))}
      <MetricsTable doc={doc} table={table} compared={compared} figures={figures} scope={scope} />
      {confusions.length ? (
        <div>
          {confusions.length > 1 ? <h3>Confusion matrices, side by side</h3> : null}
          <div class="confusions" style={{ display: "flex", flexWrap: "wrap", gap: "0 2rem" }}>
            {confusions}
          </div>
          <Note>Each cell of a confusion matrix: its rows and their share of the true class's rows.</Note>
        </div>
      ) : null}
      {distribution}
      {binary && hasProbability ? <ThresholdView doc={doc} table={table} active={active} scope={scope} threshold={threshold} setThreshold={setThreshold} /> : null}
    </Section>
  );
}
