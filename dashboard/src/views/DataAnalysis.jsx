import { useContext, useMemo } from "preact/hooks";
import { Ctx } from "../context.js";
import { Table, Scope, Section, Note } from "../ui.jsx";
import { count } from "../format.js";
import { LabelledChart, MISSING, binIndex, binLabel, groupValues } from "./DataExplorer.jsx";

// Data analysis of the active cohort: label and prediction balance and each feature's
// distribution. A bundle cohort shows gather's full-data figures; a cohort made in the page
// the same figures computed on its carried rows (in the bins of all data's summary).

const BLUE = "#4c78a8";
const CONFIG = {
  font: "DejaVu Sans, sans-serif",
  axis: { labelFontSize: 10, titleFontSize: 11 },
  view: { stroke: null },
};

// charts.horizontal_bars: one bar per label, in the given order.
export function barsSpec(rows, { labelTitle, valueTitle, width = 210 }) {
  if (!rows.length) return null;
  return {
    width,
    height: Math.max(40, 16 * rows.length),
    data: { values: rows.map((r) => ({ label: r.label, value: r.value })) },
    mark: { type: "bar", color: BLUE },
    encoding: {
      y: { field: "label", type: "nominal", title: labelTitle, sort: rows.map((r) => r.label), axis: { labelLimit: 110 } },
      x: { field: "value", type: "quantitative", title: valueTitle, axis: { labelOverlap: true, tickCount: 5 } },
      tooltip: [
        { field: "label", title: labelTitle },
        { field: "value", title: valueTitle, type: "quantitative" },
      ],
    },
    config: CONFIG,
  };
}

// pandas' std (ddof 1) and mean of numbers.
function meanStd(values) {
  const v = values.filter((x) => x !== null && x !== undefined && !Number.isNaN(x));
  if (!v.length) return { mean: null, std: null };
  const mean = v.reduce((s, x) => s + x, 0) / v.length;
  if (v.length < 2) return { mean, std: null };
  const ss = v.reduce((s, x) => s + (x - mean) ** 2, 0);
  return { mean, std: Math.sqrt(ss / (v.length - 1)) };
}

// gather._balance on the carried rows `index`.
function balanceOf(doc, table, index) {
  const yt = index.map((i) => table.column("y_true")[i]);
  const yp = index.map((i) => table.column("y_pred")[i]);
  if (doc.task_type === "regression") return { count: index.length, y_true: meanStd(yt), y_pred: meanStd(yp) };
  const tally = (ys) => Object.fromEntries((doc.classes || []).map((c) => [String(c), ys.filter((y) => y === c).length]));
  return { count: index.length, y_true: tally(yt), y_pred: tally(yp) };
}

// gather._distribution on the carried rows: counts in all data's bins (histogram edges, or
// top values and "(other)"), and the missing ones.
function distributionOf(summary, feature, values) {
  const present = values.filter((v) => v !== null && v !== undefined);
  const missing = values.length - present.length;
  if (summary && summary.histogram) {
    const edges = summary.histogram.edges;
    const counts = new Array(edges.length - 1).fill(0);
    for (const v of present) {
      const b = binIndex(v, edges, false);
      if (b >= 0) counts[b]++;
    }
    return { bins: edges.slice(0, -1).map((lo, i) => binLabel(lo, edges[i + 1])), counts, missing };
  }
  if (summary && summary.top_values) {
    const top = summary.top_values.map((t) => t.value);
    const tally = new Map(top.map((t) => [t, 0]));
    let other = 0;
    for (const v of present) {
      const k = String(v);
      if (tally.has(k)) tally.set(k, tally.get(k) + 1);
      else other++;
    }
    const bins = [...top];
    const counts = top.map((t) => tally.get(t));
    if (summary.other_count !== undefined) {
      bins.push("(other)");
      counts.push(other);
    }
    return { bins, counts, missing };
  }
  // No summary of all data (e.g. a datetime column): the carried rows' own groups.
  const g = groupValues(values, feature, 10);
  const counts = g.labels.map(() => 0);
  for (let i = 0; i < values.length; i++) counts[g.of[i]]++;
  const own = g.labels.filter((l) => l !== MISSING);
  return { bins: own, counts: counts.slice(0, own.length), missing };
}

function BalanceView({ doc, balance }) {
  if (doc.task_type === "regression") {
    return (
      <Table
        header={["column", "mean", "std"]}
        rows={[
          ["true value", balance.y_true.mean, balance.y_true.std],
          ["prediction", balance.y_pred.mean, balance.y_pred.std],
        ]}
        testid="balance"
      />
    );
  }
  const classes = Object.keys(balance.y_true);
  const bars = classes.flatMap((c) => [
    { label: c + " (true)", value: balance.y_true[c] },
    { label: c + " (predicted)", value: balance.y_pred[c] },
  ]);
  return (
    <div>
      <LabelledChart
        spec={barsSpec(bars, { labelTitle: "class", valueTitle: "rows", width: 380 })}
        label={"Rows per class, true and predicted: " + bars.map((b) => b.label + " " + count(b.value)).join(", ")}
      />
      <Table
        header={["class", "true", "predicted"]}
        rows={classes.map((c) => [c, balance.y_true[c], balance.y_pred[c]])}
        countColumns={[1, 2]}
        testid="balance"
      />
    </div>
  );
}

// insights.json's data_analysis.features: numeric and categorical features apart (two narrow tables).
function FeatureSummary({ summaries }) {
  const numeric = summaries.filter((f) => f.kind === "numeric");
  const categorical = summaries.filter((f) => f.kind !== "numeric");
  const q = (f, k) => (f.quantiles ? f.quantiles[k] : null);
  return (
    <div>
      <h3>Feature summary (all test rows)</h3>
      {numeric.length ? (
        <Table
          caption="numeric features"
          header={["feature", "missing", "mean", "std", "min", "median", "max"]}
          rows={numeric.map((f) => [f.feature, f.missing, f.mean, f.std, f.min, q(f, "0.5"), f.max])}
          countColumns={[1]}
          testid="feature-summary"
        />
      ) : null}
      {categorical.length ? (
        <Table
          caption="categorical features"
          header={["feature", "missing", "distinct values", "most common"]}
          rows={categorical.map((f) => [
            f.feature,
            f.missing,
            f.n_unique === undefined ? null : f.n_unique,
            f.top_values && f.top_values.length ? f.top_values[0].value + " (" + count(f.top_values[0].count) + " rows)" : "",
          ])}
          countColumns={[1, 2]}
          testid="feature-summary-categorical"
        />
      ) : null}
    </div>
  );
}

export default function DataAnalysis() {
  const ctx = useContext(Ctx);
  const { doc, table, active } = ctx;
  const view = active.view;
  const summaries = useMemo(
    () => new Map(((doc.data_analysis && doc.data_analysis.features) || []).map((f) => [f.feature, f])),
    [doc],
  );

  // Full-data figures of a bundle cohort, else the carried rows'.
  const figures = useMemo(() => {
    if (view && view.balance && view.distributions) {
      return { full: true, balance: view.balance, distributions: view.distributions };
    }
    if (!table.present) return null;
    const index = [];
    for (let i = 0; i < table.n; i++) if (active.mask[i]) index.push(i);
    const distributions = {};
    const features = (doc.data && doc.data.features) || table.features.map((f) => f.name);
    for (const name of features) {
      const meta = table.feature(name);
      if (!meta) continue;
      const col = table.column(name);
      const values = index.map((i) => (col[i] === undefined ? null : col[i]));
      const parsed = meta.kind === "datetime" ? values.map((v) => (v === null ? null : Date.parse(v))) : values;
      distributions[name] = distributionOf(summaries.get(name), meta, parsed);
    }
    return { full: false, balance: balanceOf(doc, table, index), distributions };
  }, [view, table, active, doc, summaries]);

  const scopeText =
    figures && figures.full ? (view.count ? "on all " + count(view.count) + " test rows of this cohort (full data)" : "no test rows in this cohort (full data)") : null;
  const sensitive = (doc.data_analysis && doc.data_analysis.balance && doc.data_analysis.balance.sensitive_groups) || {};

  return (
    <Section title={"Data analysis: " + active.name} id="data-analysis">
      {!figures ? (
        <Note>
          This page carries no rows and the bundle has no figures for this cohort: its data analysis is in the next run's
          bundle once the cohort is exported (Cohorts tab).
        </Note>
      ) : (
        <div>
          <h3>Label and prediction balance</h3>
          <Scope cohort={active} text={scopeText} />
          <BalanceView doc={doc} balance={figures.balance} />
          <h3>Feature distributions</h3>
          <Scope cohort={active} text={scopeText} />
          {figures.full ? null : (
            <Note>Counted in all data's bins, as the bundle's cohorts are, so the figures compare with theirs.</Note>
          )}
          <div data-testid="distributions" style={{ display: "grid", gridTemplateColumns: "repeat(auto-fill, minmax(min(100%, 23rem), 1fr))", gap: "0 1rem" }}>
            {Object.entries(figures.distributions).map(([feature, d]) => {
              const bars = d.bins.map((b, i) => ({ label: String(b), value: d.counts[i] }));
              if (d.missing) bars.push({ label: MISSING, value: d.missing });
              return (
                <div class="distribution">
                  <h4>{feature}</h4>
                  <LabelledChart
                    spec={barsSpec(bars, { labelTitle: feature, valueTitle: "rows" })}
                    label={"Rows of " + active.name + " per value of " + feature + ": " + bars.map((b) => b.label + " " + b.value).join(", ")}
                  />
                </div>
              );
            })}
          </div>
        </div>
      )}
      {Object.keys(sensitive).length ? <h3>Label and prediction balance per sensitive group (all test rows)</h3> : null}
      {Object.entries(sensitive).map(([feature, groups]) => {
        const first = Object.values(groups)[0];
        const classes = first ? Object.keys(first.y_true) : [];
        return (
          <Table
            caption={feature}
            header={[feature, "count", ...classes.flatMap((k) => ["true " + k, "predicted " + k])]}
            rows={Object.entries(groups).map(([g, v]) => [g, v.count, ...classes.flatMap((k) => [v.y_true[k], v.y_pred[k]])])}
            countColumns={Array.from({ length: doc.task_type === "regression" ? 1 : 1 + 2 * classes.length }, (_, i) => i + 1)}
            testid="sensitive-balance"
          />
        );
      })}
      {summaries.size ? <FeatureSummary summaries={[...summaries.values()]} /> : null}
    </Section>
  );
}
