import { useContext, useState } from "preact/hooks";
import { Ctx } from "../context.js";
import { Chart } from "../chart.jsx";
import { count, fmt } from "../format.js";
import { Note, Select, Table } from "../ui.jsx";

const CONFIG = {
  font: "DejaVu Sans, sans-serif",
  axis: { labelFontSize: 10, titleFontSize: 11 },
  view: { stroke: null },
};
const Z = 1.959963984540054; // two-sided 95%
const BLUE = "#4c78a8";
const SMALL = "#bbbbbb";

// Wilson score interval of a proportion k / n (95%): sensible near 0 and 1 and for small n.
export function wilson(k, n) {
  if (!(n > 0) || k === null || Number.isNaN(k)) return null;
  const p = k / n;
  const z2 = Z * Z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (Z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / (1 + z2 / n);
  // Exactly 0 and 1 at the ends (the formula leaves float noise such as 5.6e-17 there).
  return [k === 0 ? 0 : Math.max(0, centre - half), k === n ? 1 : Math.min(1, centre + half)];
}

// A binary classifier's confusion counts of a group, read back from its rates (count,
// selection rate, accuracy, precision), or null when they do not determine them.
function confusionCounts(g) {
  const n = g.count;
  if (!(n > 0) || g.selection_rate === null || g.selection_rate === undefined || g.accuracy_score === null || g.accuracy_score === undefined) return null;
  const pp = Math.round(g.selection_rate * n);
  const tp = pp === 0 ? 0 : g.precision_score === null || g.precision_score === undefined ? null : Math.round(g.precision_score * pp);
  if (tp === null) return null;
  const tn = Math.round(g.accuracy_score * n) - tp;
  const fp = pp - tp;
  const fn = n - pp - tn;
  if (tn < 0 || fp < 0 || fn < 0) return null;
  return { tp, fp, tn, fn };
}

// The bundle's interval of a group's metric, in any of the shapes gather may write it.
function bundleInterval(g, m) {
  const pick = (x) => {
    if (!x) return null;
    if (Array.isArray(x) && x.length === 2) return x;
    if (typeof x === "object" && "ci_lower" in x) return [x.ci_lower, x.ci_upper];
    return null;
  };
  return pick(g.intervals && g.intervals[m]) || pick(g.ci && g.ci[m]) || (m + "_ci_lower" in g ? [g[m + "_ci_lower"], g[m + "_ci_upper"]] : null);
}

// Each group's metric interval: the bundle's where it has one, else a Wilson interval for a
// rate whose numerator and denominator follow from the group's full-data figures.
export function groupInterval(doc, g, m) {
  const own = bundleInterval(g, m);
  if (own) return own[0] === null || own[0] === undefined ? null : { low: own[0], high: own[1], how: "bundle" };
  if (g[m] === null || g[m] === undefined) return null;
  const n = g.count;
  let k = null;
  let d = null;
  if (m === "accuracy_score" || m === "error_rate") {
    k = Math.round(g[m] * n);
    d = n;
  } else if (doc.task_type === "binary_classification") {
    const c = confusionCounts(g);
    if (c) {
      const num = { selection_rate: c.tp + c.fp, precision_score: c.tp, recall_score: c.tp, false_negative_rate: c.fn, false_positive_rate: c.fp };
      const den = { selection_rate: n, precision_score: c.tp + c.fp, recall_score: c.tp + c.fn, false_negative_rate: c.tp + c.fn, false_positive_rate: c.fp + c.tn };
      if (m in num) {
        k = num[m];
        d = den[m];
      }
    }
  }
  const w = k === null ? null : wilson(k, d);
  return w ? { low: w[0], high: w[1], how: "wilson" } : null;
}

// The reasons figures are undefined, one sentence per kind and reason (metrics named).
function undefinedNotes(f) {
  const out = [];
  for (const [kind, reasons] of Object.entries(f.undefined || {})) {
    const byReason = new Map();
    for (const [m, why] of Object.entries(reasons)) byReason.set(why, [...(byReason.get(why) || []), m]);
    for (const [why, metrics] of byReason) out.push(kind + " of " + metrics.join(", ") + ": undefined, " + why + ".");
  }
  return out;
}

const flagText = (g) => (g.flag ? g.flag : g.too_few_rows ? "too few rows" : null);

function chartSpec(doc, entries, metric) {
  const values = [];
  entries.forEach((f) => {
    const title = f.features.join(" × ");
    for (const g of f.by_group) {
      const ci = groupInterval(doc, g, metric);
      const small = !!(g.too_few_rows || g.flag);
      values.push({
        entry: title,
        group: (small ? "⚠ " : "") + g.label,
        value: g[metric],
        low: ci ? ci.low : null,
        high: ci ? ci.high : null,
        rows: g.count,
        status: small ? "too few rows: not compared" : "compared",
      });
    }
  });
  if (!values.some((v) => v.value !== null && v.value !== undefined)) return null;
  const statuses = ["compared", "too few rows: not compared"];
  const panel = (f) => {
    const title = f.features.join(" × ");
    const mine = values.filter((v) => v.entry === title);
    // One label width for every panel, so the bars of all panels start at the same place.
    const y = { field: "group", type: "nominal", title: null, sort: mine.map((v) => v.group), axis: { labelLimit: 220, minExtent: 226 } };
    const x = { field: "value", type: "quantitative", title: metric, axis: { labelOverlap: true, tickCount: 5 } };
    return {
      title: { text: title, anchor: "start", fontSize: 11 },
      width: 380,
      height: { step: 18 },
      data: { values: mine },
      layer: [
        {
          mark: { type: "bar" },
          encoding: {
            y,
            x,
            color: { field: "status", type: "nominal", title: null, scale: { domain: statuses, range: [BLUE, SMALL] }, legend: { orient: "bottom" } },
            tooltip: [
              { field: "group", type: "nominal" },
              { field: "value", type: "quantitative", title: metric, format: ".4g" },
              { field: "low", type: "quantitative", title: "interval from", format: ".4g" },
              { field: "high", type: "quantitative", title: "interval to", format: ".4g" },
              { field: "rows", type: "quantitative" },
              { field: "status", type: "nominal" },
            ],
          },
        },
        ...(mine.some((v) => v.low !== null)
          ? [
              {
                transform: [{ filter: "isValid(datum.low) && isValid(datum.high)" }],
                mark: { type: "rule", color: "#333333", strokeWidth: 1.5 },
                encoding: { y, x: { field: "low", type: "quantitative" }, x2: { field: "high" } },
              },
            ]
          : []),
        {
          transform: [{ filter: "!isValid(datum.value)" }],
          mark: { type: "text", align: "left", dx: 3, color: "#666666" },
          encoding: { y, x: { datum: 0, type: "quantitative" }, text: { value: "n/a" } },
        },
      ],
    };
  };
  // One chart: a panel per sensitive feature (and intersection) on one shared axis.
  return {
    config: CONFIG,
    vconcat: entries.map(panel),
    spacing: 16,
    resolve: { scale: { x: "shared", color: "shared" } },
  };
}

function Entry({ doc, f, names }) {
  const title = f.features.join(" × ");
  const cell = (g, m) => {
    const ci = groupInterval(doc, g, m);
    if (!ci) return fmt(g[m]);
    return (
      <span title={(ci.how === "wilson" ? "95% Wilson interval: " : "interval: ") + fmt(ci.low) + " to " + fmt(ci.high)}>
        {fmt(g[m])}
        <br />
        <span class="muted ci" style={{ whiteSpace: "nowrap" }}>
          [{fmt(ci.low)}, {fmt(ci.high)}]
        </span>
      </span>
    );
  };
  const binning = f.binning && Object.keys(f.binning).length ? f.binning : null;
  return (
    <div class="fairness-entry">
      <h3>{title}</h3>
      {binning ? (
        <p class="muted">
          Binned:{" "}
          {Object.entries(binning)
            .map(([feature, b]) => feature + " into " + (b.labels ? b.labels.join(", ") : "bins"))
            .join("; ")}
          .
        </p>
      ) : null}
      {/* Focusable: a wide table scrolls, and the keyboard must reach it. */}
      <div class="table-wrap" tabIndex={0} role="region" aria-label={"Metrics per group of " + title}>
        <table data-testid="fairness-table" class="fairness">
          <thead>
            <tr>
              <th scope="col" class="text">
                Group
              </th>
              <th scope="col" class="num">
                rows
              </th>
              <th scope="col" class="text">
                flag
              </th>
              {names.map((m) => (
                <th scope="col" class="num">
                  {m}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {f.by_group.map((g) => {
              const flag = flagText(g);
              return (
                <tr class={flag ? "small-group" : undefined} data-group={g.label} style={flag ? { background: "#f1f1f1", color: "#555" } : undefined}>
                  <th scope="row" class="text">
                    {g.label}
                  </th>
                  <td class="num">{count(g.count)}</td>
                  <td class="text">
                    {flag ? (
                      <strong class="flag" style={{ whiteSpace: "nowrap" }} title={"fewer than " + (f.min_group_size ?? 30) + " test rows: shown, not compared"}>
                        ⚠ {flag}, not compared
                      </strong>
                    ) : (
                      ""
                    )}
                  </td>
                  {names.map((m) => (
                    <td class="num" data-metric={m}>
                      {cell(g, m)}
                    </td>
                  ))}
                </tr>
              );
            })}
            {[
              ["difference (largest − smallest)", f.difference],
              ["ratio (smallest / largest)", f.ratio],
              ["groups compared", f.groups_compared],
            ]
              .filter(([, values]) => values)
              .map(([label, values]) => (
                <tr class="summary">
                  <th scope="row" class="text">
                    {label}
                  </th>
                  <td class="num" />
                  <td class="text" />
                  {names.map((m) => (
                    <td class="num" data-metric={m}>
                      {fmt(values[m])}
                    </td>
                  ))}
                </tr>
              ))}
          </tbody>
        </table>
      </div>
      {undefinedNotes(f).map((text) => (
        <p class="muted">{text}</p>
      ))}
      {(() => {
        const extra = ["demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference", "equalized_odds_ratio"].filter((k) => k in f);
        return extra.length ? <Table header={["Figure", "value"]} rows={extra.map((k) => [k, f[k]])} /> : null;
      })()}
    </div>
  );
}

export default function Fairness() {
  const ctx = useContext(Ctx);
  const { doc } = ctx;
  const entries = doc.fairness || [];
  const names = doc.model_overview.metric_names;
  const [metric, setMetric] = useState(names.includes("selection_rate") ? "selection_rate" : names[0]);
  if (!entries.length) {
    return (
      <section>
        <h2>Fairness</h2>
        <Note>No sensitive feature configured: no fairness figures.</Note>
      </section>
    );
  }
  const min = doc.min_group_size !== undefined ? doc.min_group_size : 30;
  const bundled = entries.some((f) => f.by_group.some((g) => names.some((m) => bundleInterval(g, m))));
  const spec = chartSpec(doc, entries, metric);
  return (
    <section>
      <h2>Fairness</h2>
      <p class="muted">
        Metrics per group of each sensitive feature (and their intersection) over all {count(doc.data ? doc.data.n_test : null)}{" "}
        test rows (as fairlearn's MetricFrame computes them); difference = largest minus smallest, ratio = smallest over
        largest, over the groups of at least {min} test rows with a value: smaller groups are shown, flagged "too few rows",
        and not compared. No ratio of a metric that can be negative, nor of a share of rows whose largest group value counts fewer
        than 5 rows (such a ratio is chance). n/a: undefined (the reason is given below the table).
      </p>
      <p class="muted">
        {bundled
          ? "Intervals: the bundle's."
          : doc.task_type === "regression"
            ? "No intervals: the bundle carries none for these metrics (they are not rates the page could bound from counts)."
            : "Intervals (below a rate): 95% Wilson score intervals of the rate, from the group's full-data counts (accuracy and error rate from its rows; for a binary classifier, selection rate, precision, recall and false positive/negative rates from its confusion counts). Other metrics have none."}
      </p>
      <h3>One metric across the groups</h3>
      <div class="controls">
        <Select label="Metric" name="fairness-metric" value={metric} options={names} onChange={setMetric} />
      </div>
      <Chart
        spec={spec}
        label={"Bar chart of " + metric + " per group of each sensitive feature, with intervals; groups with too few rows are grey"}
        testid="fairness-chart"
      />
      {entries.map((f) => (
        <Entry doc={doc} f={f} names={names} />
      ))}
    </section>
  );
}
