import { useContext, useMemo, useState } from "preact/hooks";
import { Ctx } from "../context.js";
import { Chart } from "../chart.jsx";
import { Table, Scope, Select, Section, Note } from "../ui.jsx";
import { count, fmt, formatG } from "../format.js";

// The data explorer: any two columns of the active cohort's carried rows, as a scatter of the
// rows or aggregated per x group (bars of the mean of y or of the row count, box plots), with
// the aggregates table holding exactly the figures drawn.

export const MISSING = "(missing)";

// A chart whose spec carries its label as `description`: Vega sets the container's
// aria-label from it (else "Vega visualization", over the label Chart gave it).
export function LabelledChart({ spec, label, testid }) {
  return <Chart spec={spec ? { description: label, ...spec } : null} label={label} testid={testid} />;
}
const WIDTH = 520;
const X_BINS = 10;
const COLOR_BINS = 5;

// np.linspace(lo, hi, n + 1): the edges numpy's histogram uses for equal-width bins.
export function linspaceEdges(lo, hi, n) {
  const step = (hi - lo) / n;
  const edges = Array.from({ length: n + 1 }, (_, i) => lo + i * step);
  edges[n] = hi;
  return edges;
}

// The bin of v in sorted edges as np.histogram places it: bins half-open [a, b) but the last
// closed; -1 outside. Equal-width edges: numpy's arithmetic (index from the width, then
// corrected against the edges), so a value on an edge lands where numpy puts it.
export function binIndex(v, edges, uniform) {
  const n = edges.length - 1;
  if (!(v >= edges[0] && v <= edges[n])) return -1;
  let i;
  if (uniform && edges[n] > edges[0]) {
    i = Math.floor(((v - edges[0]) * n) / (edges[n] - edges[0]));
    if (i === n) i -= 1;
    if (v < edges[i]) i -= 1;
    else if (i !== n - 1 && v >= edges[i + 1]) i += 1;
  } else {
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (v >= edges[mid]) lo = mid;
      else hi = mid - 1;
    }
    i = lo;
  }
  return i;
}

// Python's f"{lo:.4g} to {hi:.4g}" (gather's bin labels).
export const binLabel = (lo, hi) => formatG(lo, 4) + " to " + formatG(hi, 4);

const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);
const isoTime = (ms) => new Date(ms).toISOString().replace("T", " ").replace(/(:00)?\.000Z$/, "");

// Groups of the values (null = missing): categories in their order, the distinct values of a
// numeric column with at most `bins` of them, else `bins` equal-width bins over the values'
// range (numpy's). Missing values form the last group, "(missing)".
export function groupValues(values, variable, bins) {
  const n = values.length;
  const of = new Int32Array(n);
  const labels = [];
  let missing = 0;
  for (const v of values) if (v === null) missing++;
  if (variable.kind === "categorical") {
    const order = new Map();
    const present = new Set(values);
    for (const c of variable.categories || []) if (present.has(c)) order.set(c, order.size);
    for (const v of values) if (v !== null && !order.has(v)) order.set(v, order.size);
    for (const c of order.keys()) labels.push(String(c));
    for (let i = 0; i < n; i++) of[i] = values[i] === null ? labels.length : order.get(values[i]);
  } else {
    const distinct = [...new Set(values.filter((v) => v !== null))].sort((a, b) => a - b);
    if (distinct.length <= bins) {
      const pos = new Map(distinct.map((v, i) => [v, i]));
      const text = variable.kind === "datetime" ? (v) => isoTime(v) : fmt;
      for (const v of distinct) labels.push(text(v));
      for (let i = 0; i < n; i++) of[i] = values[i] === null ? labels.length : pos.get(values[i]);
    } else {
      const edges = linspaceEdges(distinct[0], distinct[distinct.length - 1], bins);
      const text = variable.kind === "datetime" ? (a, b) => isoDay(a) + " to " + isoDay(b) : binLabel;
      for (let b = 0; b < bins; b++) labels.push(text(edges[b], edges[b + 1]));
      for (let i = 0; i < n; i++) of[i] = values[i] === null ? labels.length : binIndex(values[i], edges, true);
    }
  }
  if (missing) labels.push(MISSING);
  return { labels, of };
}

// numpy's default (linear) quantile of sorted values.
export function quantile(sorted, q) {
  if (!sorted.length) return null;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

// The columns one can plot: each feature, then the model's columns.
export function variables(doc, table) {
  const regression = doc.task_type === "regression";
  const out = table.features.map((f) => ({ id: f.name, label: f.name, kind: f.kind, categories: f.categories }));
  const outcome = regression ? { kind: "numeric" } : { kind: "categorical", categories: doc.classes || [] };
  out.push({ id: "y_pred", label: "prediction", ...outcome });
  if (doc.task_type === "binary_classification") {
    out.push({ id: "probability", label: "probability of " + doc.positive_label, kind: "numeric" });
  }
  out.push({ id: "y_true", label: "true value", ...outcome });
  out.push({ id: "error", label: regression ? "error (absolute)" : "error (1: misclassified)", kind: "numeric" });
  return out;
}

// A column's values on the rows `index` (null = missing; datetimes as milliseconds).
function valuesOf(table, variable, index) {
  const col = table.column(variable.id);
  const out = new Array(index.length);
  for (let k = 0; k < index.length; k++) {
    let v = col[index[k]];
    if (v === undefined || (typeof v === "number" && Number.isNaN(v))) v = null;
    if (v !== null && variable.kind === "datetime") {
      v = Date.parse(v);
      if (Number.isNaN(v)) v = null;
    }
    out[k] = v;
  }
  return out;
}

// Each row's membership of the compared cohorts other than the active one, and the labels in
// order: one cohort (in the compare list's order), then several, then none.
function cohortLabels(active, compared, index) {
  const others = compared.filter((c) => c.key !== active.key).slice(0, 16);
  const labelOf = (bits) => {
    const inside = others.filter((_, k) => bits & (1 << k)).map((c) => c.name);
    if (inside.length) return "also in " + inside.join(" and ");
    return others.length === 1 ? "not in " + others[0].name : "in no compared cohort";
  };
  const bitsOf = index.map((i) => others.reduce((b, c, k) => (c.mask[i] ? b | (1 << k) : b), 0));
  const popcount = (b) => b.toString(2).replace(/0/g, "").length;
  const order = [...new Set(bitsOf)].sort((a, b) => (a === 0) - (b === 0) || popcount(a) - popcount(b) || a - b);
  return { values: bitsOf.map(labelOf), categories: order.map(labelOf) };
}

const numericKind = (v) => v.kind === "numeric" || v.kind === "datetime";
const axisType = (v) => (v.kind === "datetime" ? "temporal" : v.kind === "numeric" ? "quantitative" : "nominal");

// The figures of one (x group, colour group) cell for the plot.
function summarize(ys, plot) {
  const present = ys.filter((v) => v !== null);
  if (plot === "box") {
    const s = Float64Array.from(present).sort();
    return {
      n: present.length,
      min: s.length ? s[0] : null,
      q1: quantile(s, 0.25),
      median: quantile(s, 0.5),
      q3: quantile(s, 0.75),
      max: s.length ? s[s.length - 1] : null,
    };
  }
  let sum = 0;
  for (const v of present) sum += v;
  return { n: present.length, mean: present.length ? sum / present.length : null };
}

// Everything the chart and the table show, from the rows' x, y and colour values.
export function explore({ x, y, color, plot, xs, ys, cs, colorVar, rowIds, yLabel }) {
  const notes = [];
  const colorName = color === "none" ? null : color === "cohort" ? "cohort" : colorVar.label;
  const xTitle = x.label;
  if (plot === "scatter") {
    const points = [];
    let dropped = 0;
    for (let i = 0; i < xs.length; i++) {
      const xv = xs[i] === null && !numericKind(x) ? MISSING : xs[i];
      const yv = y.id === "count" ? null : ys[i] === null && !numericKind(y) ? MISSING : ys[i];
      if (xv === null || yv === null) {
        dropped++;
        continue;
      }
      const p = { x: xv, y: yv, row: rowIds[i] };
      if (cs) p.c = cs[i] === null ? (colorVar && numericKind(colorVar) ? null : MISSING) : cs[i];
      points.push(p);
    }
    if (dropped) notes.push(count(dropped) + " rows with a missing " + (numericKind(x) ? "x" : "y") + " value are not drawn (a numeric axis has no place for them).");
    // Table: per colour group (a numeric colour: its bins), rows drawn and the means of x and y.
    const groups = cs && colorVar && numericKind(colorVar) ? groupValues(points.map((p) => p.c), colorVar, COLOR_BINS) : null;
    const keyOf = (p, k) => (groups ? groups.labels[groups.of[k]] : cs ? String(p.c) : "all drawn rows");
    const cells = new Map();
    points.forEach((p, k) => {
      const key = keyOf(p, k);
      if (!cells.has(key)) cells.set(key, { n: 0, sx: 0, sy: 0 });
      const c = cells.get(key);
      c.n++;
      if (numericKind(x)) c.sx += p.x;
      if (numericKind(y)) c.sy += p.y;
    });
    const order = groups ? groups.labels.filter((l) => cells.has(l)) : [...cells.keys()];
    if (!groups && cs && colorVar && colorVar.categories) {
      const rank = new Map(colorVar.categories.map((c, i) => [String(c), i]));
      order.sort((a, b) => (rank.has(a) ? rank.get(a) : 1e9) - (rank.has(b) ? rank.get(b) : 1e9));
    }
    const header = [colorName || "rows", "rows drawn", "mean of " + x.label, "mean of " + yLabel];
    const rows = order.map((k) => {
      const c = cells.get(k);
      const mx = numericKind(x) ? c.sx / c.n : null;
      return [k, c.n, x.kind === "datetime" && mx !== null ? isoDay(mx) : mx, numericKind(y) ? c.sy / c.n : null];
    });
    const type = (v) => (v.kind === "categorical" ? "nominal" : axisType(v));
    const colorEnc = cs
      ? colorVar && numericKind(colorVar)
        ? { field: "c", type: axisType(colorVar), title: colorName, scale: { scheme: "viridis" }, legend: { orient: "bottom" } }
        : { field: "c", type: "nominal", title: colorName, sort: order, legend: { orient: "bottom", labelLimit: 260 } }
      : { value: "#4c78a8" };
    const spec = points.length
      ? {
          width: WIDTH,
          height: 320,
          data: { values: points },
          mark: { type: "point", filled: true, size: 24, opacity: 0.55 },
          encoding: {
            x: { field: "x", type: type(x), title: xTitle, scale: x.kind === "numeric" ? { zero: false } : undefined },
            y: { field: "y", type: type(y), title: yLabel, scale: y.kind === "numeric" ? { zero: false } : undefined },
            color: colorEnc,
            tooltip: [
              { field: "row", title: "row", type: "quantitative" },
              { field: "x", title: xTitle, type: type(x) },
              { field: "y", title: yLabel, type: type(y) },
              ...(cs ? [{ field: "c", title: colorName, type: colorEnc.type }] : []),
            ],
          },
          config: CONFIG,
        }
      : null;
    return { spec, header, rows, counts: [1], notes, drawn: points.length };
  }

  // Aggregates per x group (and colour group).
  const gx = groupValues(xs, x, X_BINS);
  const categoricalY = y.id !== "count" && !numericKind(y);
  const gc = categoricalY
    ? groupValues(ys, y, X_BINS)
    : cs
      ? colorVar && colorVar.kind !== "categorical"
        ? groupValues(cs, colorVar, COLOR_BINS)
        : groupValues(cs, { kind: "categorical", categories: colorVar ? colorVar.categories : [] }, 0)
      : null;
  if (categoricalY && cs) notes.push("The colour shows the classes of " + yLabel + " here (the colour chosen is not used).");
  const nc = gc ? gc.labels.length : 1;
  const cells = gx.labels.map(() => Array.from({ length: nc }, () => []));
  for (let i = 0; i < xs.length; i++) cells[gx.of[i]][gc ? gc.of[i] : 0].push(y.id === "count" || categoricalY ? 1 : ys[i]);
  const xTotals = cells.map((row) => row.reduce((s, c) => s + c.length, 0));
  const cName = categoricalY ? yLabel : colorName;
  const header = [xTitle, ...(gc ? [cName] : []), "rows"];
  const values = [];
  const rows = [];
  if (y.id === "count" || categoricalY) {
    if (gc) header.push("share of the " + xTitle + " group");
  } else if (plot === "box") {
    header.push("rows with " + yLabel, "min", "25%", "median", "75%", "max");
  } else {
    header.push("rows with " + yLabel, "mean of " + yLabel);
  }
  cells.forEach((row, a) =>
    row.forEach((ysOf, b) => {
      if (!ysOf.length) return;
      const g = gx.labels[a];
      const c = gc ? gc.labels[b] : null;
      const lead = [g, ...(gc ? [c] : []), ysOf.length];
      if (y.id === "count" || categoricalY) {
        rows.push([...lead, ...(gc ? [ysOf.length / xTotals[a]] : [])]);
        values.push({ g, c, value: ysOf.length, rows: ysOf.length });
      } else {
        const s = summarize(ysOf, plot);
        if (plot === "box") {
          rows.push([...lead, s.n, s.min, s.q1, s.median, s.q3, s.max]);
          if (s.n) values.push({ g, c, rows: ysOf.length, ...s });
        } else {
          rows.push([...lead, s.n, s.mean]);
          if (s.mean !== null) values.push({ g, c, value: s.mean, rows: ysOf.length });
        }
      }
    }),
  );
  const many = gx.labels.length > 6 || gx.labels.some((l) => l.length > 12);
  const xEnc = {
    field: "g",
    type: "nominal",
    sort: gx.labels,
    title: xTitle,
    axis: { labelAngle: many ? -40 : 0, labelLimit: 140 },
  };
  const colorEnc = gc
    ? { field: "c", type: "nominal", sort: gc.labels, title: cName, legend: { orient: "bottom", labelLimit: 260 } }
    : { value: "#4c78a8" };
  const offset = gc && plot !== "bars" ? { xOffset: { field: "c", sort: gc.labels } } : {};
  const grouped = gc && !(y.id === "count" || categoricalY) ? { xOffset: { field: "c", sort: gc.labels } } : {};
  const tip = (extra) => [
    { field: "g", title: xTitle },
    ...(gc ? [{ field: "c", title: cName }] : []),
    { field: "rows", title: "rows", type: "quantitative" },
    ...extra,
  ];
  let spec = null;
  if (values.length && plot === "box") {
    const yEnc = (field) => ({ field, type: "quantitative", title: yLabel, scale: { zero: false } });
    spec = {
      width: WIDTH,
      height: 300,
      data: { values },
      encoding: { x: xEnc, ...offset },
      layer: [
        { mark: { type: "rule" }, encoding: { y: yEnc("min"), y2: { field: "max" }, color: colorEnc } },
        {
          mark: { type: "bar", size: gc ? Math.max(4, Math.floor(200 / (gx.labels.length * nc))) : 18 },
          encoding: {
            y: yEnc("q1"),
            y2: { field: "q3" },
            color: colorEnc,
            tooltip: tip(["min", "q1", "median", "q3", "max"].map((f) => ({ field: f, type: "quantitative", format: ".4~g" }))),
          },
        },
        {
          mark: { type: "tick", color: "black", thickness: 2, size: gc ? Math.max(4, Math.floor(200 / (gx.labels.length * nc))) : 18 },
          encoding: { y: yEnc("median") },
        },
      ],
      config: CONFIG,
    };
  } else if (values.length) {
    const title = y.id === "count" || categoricalY ? "rows" : "mean of " + yLabel;
    spec = {
      width: WIDTH,
      height: 300,
      data: { values },
      mark: { type: "bar" },
      encoding: {
        x: xEnc,
        ...grouped,
        y: { field: "value", type: "quantitative", title },
        color: colorEnc,
        tooltip: tip([{ field: "value", title, type: "quantitative", format: ".4~g" }]),
      },
      config: CONFIG,
    };
  }
  // "rows with y" only where some row of a group has no y.
  const withY = header.indexOf("rows with " + yLabel);
  const lead = gc ? 2 : 1;
  const keepWithY = withY >= 0 && !rows.every((r) => r[withY] === r[lead]);
  if (withY >= 0 && !keepWithY) {
    header.splice(withY, 1);
    rows.forEach((r) => r.splice(withY, 1));
  }
  return { spec, header, rows, counts: keepWithY ? [lead, withY] : [lead], notes, drawn: xs.length };
}

const CONFIG = {
  font: "DejaVu Sans, sans-serif",
  axis: { labelFontSize: 10, titleFontSize: 11 },
  legend: { labelFontSize: 10, titleFontSize: 11 },
  view: { stroke: null },
};

export default function DataExplorer() {
  const ctx = useContext(Ctx);
  const { doc, table, active, compared } = ctx;
  const vars = useMemo(() => variables(doc, table), [doc, table]);
  const byId = useMemo(() => new Map(vars.map((v) => [v.id, v])), [vars]);
  const firstNumeric = vars.find((v) => v.kind === "numeric") || vars[0];
  const [xId, setX] = useState(firstNumeric ? firstNumeric.id : "y_pred");
  const [yId, setY] = useState("error");
  const [color, setColor] = useState("none");
  const [plot, setPlot] = useState("bars");

  const x = byId.get(xId) || vars[0];
  const yVar = byId.get(yId);
  const y = yId === "count" || !yVar || yVar.kind === "datetime" ? { id: "count", label: "count", kind: "count" } : yVar;
  const colorVar = color !== "none" && color !== "cohort" ? byId.get(color) : null;
  // A count has no distribution, nor a class a box: both drawn as bars of rows.
  const categoricalY = y.id !== "count" && y.kind === "categorical";
  const effectivePlot = (y.id === "count" && plot !== "bars") || (categoricalY && plot === "box") ? "bars" : plot;

  const result = useMemo(() => {
    if (!table.present || !active || !x) return null;
    const index = [];
    for (let i = 0; i < table.n; i++) if (active.mask[i]) index.push(i);
    const xs = valuesOf(table, x, index);
    const ys = y.id === "count" ? index.map(() => 1) : valuesOf(table, y, index);
    const membership = color === "cohort" ? cohortLabels(active, compared, index) : null;
    const cs = color === "none" ? null : membership ? membership.values : colorVar ? valuesOf(table, colorVar, index) : null;
    const rowIds = index.map((i) => table.rowId[i]);
    const cv = membership ? { kind: "categorical", label: "cohort", categories: membership.categories } : colorVar;
    return { n: index.length, ...explore({ x, y, color, plot: effectivePlot, xs, ys, cs, colorVar: cv, rowIds, yLabel: y.label }) };
  }, [table, active, compared, xId, yId, color, effectivePlot]);

  const options = vars.map((v) => ({ value: v.id, label: v.label }));
  // A date has no mean: datetime columns are x or colour only.
  const yOptions = vars.filter((v) => v.kind !== "datetime").map((v) => ({ value: v.id, label: v.label }));
  const plotName = {
    scatter: "Scatter of the rows",
    bars: y.id === "count" ? "Rows per group" : categoricalY ? "Rows per group and " + y.label : "Mean per group",
    box: "Box plot per group",
  };
  const describe = result
    ? (effectivePlot === "scatter"
        ? "Scatter of " + y.label + " against " + x.label
        : effectivePlot === "box"
          ? "Box plots of " + y.label + " per " + x.label
          : y.id === "count"
            ? "Rows per " + x.label
            : categoricalY
              ? "Rows per " + x.label + ", stacked by " + y.label
              : "Mean of " + y.label + " per " + x.label) +
      (color !== "none" ? ", coloured by " + (color === "cohort" ? "cohort" : colorVar ? colorVar.label : color) : "") +
      ", " + ctx.scope(active)
    : "";
  return (
    <Section title={"Data explorer: " + (active ? active.name : "")} id="explorer">
      <Note>
        Plot any column of the {active ? active.name : "active"} cohort's rows carried in the page against another: each row as a
        point, or aggregated per x group (a numeric x with more than {X_BINS} values in {X_BINS} equal-width bins). Missing values are
        their own group, "{MISSING}". The table below the chart holds the figures drawn.
      </Note>
      <div class="controls" role="group" aria-label="data explorer axes">
        <Select label="x" name="x" value={x ? x.id : ""} options={options} onChange={setX} />
        <Select label="y" name="y" value={y.id} options={[...yOptions, { value: "count", label: "count (rows)" }]} onChange={setY} />
        <Select
          label="colour"
          name="color"
          value={color}
          options={[{ value: "none", label: "none" }, { value: "cohort", label: "cohort (compared cohorts)" }, ...vars.filter((v) => v.id !== "count").map((v) => ({ value: v.id, label: v.label }))]}
          onChange={setColor}
        />
        <Select
          label="plot"
          name="plot"
          value={plot}
          options={[
            { value: "scatter", label: "scatter" },
            { value: "bars", label: "bars" },
            { value: "box", label: "box" },
          ]}
          onChange={setPlot}
        />
      </div>
      {!table.present ? (
        <Note>This page carries no rows of the test data (it was rendered before the page carried them): nothing to explore.</Note>
      ) : !result || !result.n ? (
        <Note>No carried row is in this cohort.</Note>
      ) : (
        <div>
          {y.id === "count" && plot !== "bars" ? <Note>A count is drawn as bars (rows per x group).</Note> : null}
          {categoricalY && plot === "box" ? <Note>{y.label} is a class, not a number: drawn as bars of rows per x group and class.</Note> : null}
          {color === "cohort" && compared.filter((c) => c.key !== active.key).length === 0 ? (
            <Note>Choose cohorts to compare with in the header to colour the rows by their membership of them.</Note>
          ) : null}
          {result.notes.map((t) => (
            <Note>{t}</Note>
          ))}
          <LabelledChart spec={result.spec} label={describe} testid="explorer-chart" />
          <h3>{plotName[effectivePlot]}: the figures drawn</h3>
          <Scope cohort={active} />
          <Table header={result.header} rows={result.rows} countColumns={result.counts} testid="explorer-aggregates" />
        </div>
      )}
    </Section>
  );
}
