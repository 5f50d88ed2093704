// rai-audit dashboard: draws every view from the JSON in #rai-data. All user text goes
// into the page through text nodes (never innerHTML), so it is shown, not interpreted.
// Wrapped in a function: the Vega bundle's classic script declares globals (e.g. `el`).
(() => {
"use strict";
const DATA = JSON.parse(document.getElementById("rai-data").textContent);
const DOC = DATA.doc, CHARTS = DATA.charts, VIEWS = DOC.cohort_views;
const app = document.getElementById("app");
const state = { view: 0, compare: [], row: DATA.rows.length ? DATA.rows[0].row_id : null };

// Python's "%.<p>g" (round half to even on exact ties, as Python does), so the page shows
// the numbers insights.json and the PDF show: 4 digits for figures, 6 in filters.
function formatG(v, p) {
  if (v === 0) return "0";
  let exp = Math.floor(Math.log10(Math.abs(v)));
  const scaled = Math.abs(v) * Math.pow(10, p - 1 - exp);
  if (scaled - Math.floor(scaled) === 0.5 && Math.floor(scaled) % 2 === 0) {
    v = Math.sign(v) * Math.floor(scaled) / Math.pow(10, p - 1 - exp);
  }
  const e = v.toExponential(p - 1);
  exp = parseInt(e.split("e")[1], 10);
  const trim = m => m.includes(".") ? m.replace(/0+$/, "").replace(/\.$/, "") : m;
  if (exp < -4 || exp >= p) {
    const [m, x] = e.split("e");
    const n = Math.abs(parseInt(x, 10));
    return trim(m) + "e" + (x.startsWith("-") ? "-" : "+") + (n < 10 ? "0" + n : String(n));
  }
  return trim(v.toFixed(Math.max(0, p - 1 - exp)));
}

function fmt(v) {
  if (v === null || v === undefined) return "n/a";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v) || !isFinite(v)) return String(v);
  return formatG(v, 4);
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k === "on") node.addEventListener(v[0], v[1]);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// Numbers (and missing values, as "n/a") right-aligned; text left-aligned, header too.
function table(header, rows) {
  const isText = c => typeof c === "string" || c instanceof Node;
  const textColumn = i => i === 0 || (rows.length > 0 && isText(rows[0][i]));
  return el("table", {}, header ? el("tr", {}, header.map((h, i) => el("th", textColumn(i) ? { class: "text" } : {}, h))) : null,
    rows.map(r => el("tr", {}, r.map((c, i) => el("td", i === 0 || isText(c) ? { class: "text" } : {},
      isText(c) ? c : fmt(c))))));
}

function chart(spec) {
  const box = el("div", { class: "chart" });
  if (spec) vegaEmbed(box, spec, { actions: false, renderer: "svg" }).catch(err => console.error(err));
  else box.append(el("p", { class: "muted" }, "no data for this chart"));
  return box;
}

function filterText(node) {
  if (!node) return "all rows";
  for (const key of ["and", "or"]) {
    if (node[key]) return node[key].map(n => (n.and || n.or) ? "(" + filterText(n) + ")" : filterText(n)).join(" " + key + " ");
  }
  if (node.value === null) return node.column + (node.op === "==" ? " is missing" : " is not missing");
  // Numbers to 6 significant digits, as the PDF: tree thresholds carry float noise (1162.0000000000002).
  const text = x => typeof x === "number" && !Number.isInteger(x) ? formatG(x, 6) : JSON.stringify(x);
  const v = Array.isArray(node.value) ? "[" + node.value.map(text).join(", ") + "]" : text(node.value);
  return node.column + " " + node.op + " " + v;
}

const view = () => VIEWS[state.view];
const viewCharts = id => CHARTS.views[String(id)] || {};
const section = (id, title) => el("section", { id }, el("h2", {}, title));

// Bundles gathered before these options existed: their defaults.
const minGroupSize = () => DOC.min_group_size !== undefined ? DOC.min_group_size : 30;
function desiredOutcome() {
  const d = DOC.desired_outcome || "increase", word = d === "increase" ? "higher" : "lower";
  const text = DOC.task_type === "binary_classification" ? "a " + word + " probability of " + DOC.positive_label
    : DOC.task_type === "regression" ? "a " + word + " " + DOC.target_column
    : d + " (a multiclass model has no positive label)";
  return text + " (desired_outcome: " + d + ")";
}

function overview() {
  const s = section("model-overview", "Model overview");
  const data = DOC.data;
  s.append(table(null, [
    ["Task", DOC.task_type], ["Target", DOC.target_column + (DOC.positive_label !== null ? " (positive class: " + DOC.positive_label + ")" : "")],
    ["Model", DOC.model.class + " (sha256 " + DOC.model.sha256.slice(0, 16) + "…)"],
    ["Test rows", data.n_test + " (all used)" + (data.sample.size !== data.n_test ? "; sample for per-row analyses: " + data.sample.size + " (seed " + data.sample.seed + ")" : "")],
    ["Train rows", String(data.n_train)],
    ["Desired outcome", desiredOutcome()],
    ["Fairness groups", "groups of fewer than " + minGroupSize() + " test rows are shown, flagged and left out of differences and ratios (min_group_size)"],
    ["Run id", DOC.run_id], ["Created", DOC.created_at + " by " + DOC.producer],
    ...(DOC.pipeline_run ? [["Pipeline run", Object.entries(DOC.pipeline_run).map(([k, v]) => k.replace("_", " ") + ": " + v).join("; ")]] : []),
    ["Insights", Object.keys(DOC.insights).length ? Object.keys(DOC.insights).join(", ") : "model overview, fairness and data analysis only"]]));
  for (const w of DOC.warnings) s.append(el("p", { class: "warn" }, w));
  const shown = [state.view, ...state.compare.filter(i => i !== state.view)].map(i => VIEWS[i]);
  const names = DOC.model_overview.metric_names;
  s.append(el("h3", {}, shown.length > 1 ? "Metrics, side by side" : "Metrics: " + view().name));
  s.append(table(["Metric", ...shown.map(v => v.name)],
    [["rows", ...shown.map(v => v.count)], ...names.map(m => [m, ...shown.map(v => v.metrics[m])])]));
  const c = viewCharts(state.view);
  if (c.confusion) s.append(el("h3", {}, "Confusion matrix (rows: true class): " + view().name), chart(c.confusion));
  if (c.residuals) s.append(el("h3", {}, "Residuals: " + view().name), chart(c.residuals));
  return s;
}

function fairness() {
  if (!DOC.fairness.length) return null;
  const s = section("fairness", "Fairness");
  s.append(el("p", { class: "muted" }, "Metrics per group of each sensitive feature over all test rows (as fairlearn's MetricFrame computes them); difference = largest minus smallest, ratio = smallest over largest, over the groups of at least " + minGroupSize() + " test rows with a value: smaller groups are shown, flagged \"too few rows\", and not compared. No ratio of a metric that can be negative. n/a: undefined (the reason is given below the table)."));
  const names = DOC.model_overview.metric_names;
  DOC.fairness.forEach((f, i) => {
    s.append(el("h3", {}, f.features.join(" × ")));
    s.append(table(["Group", "count", ...names], [
      ...f.by_group.map(g => [g.flag ? g.label + " (" + g.flag + ": not compared)" : g.label, g.count, ...names.map(m => g[m])]),
      ["difference", "", ...names.map(m => f.difference[m])], ["ratio", "", ...names.map(m => f.ratio[m])]]));
    for (const [kind, reasons] of Object.entries(f.undefined || {})) {
      for (const [m, why] of Object.entries(reasons)) s.append(el("p", { class: "muted" }, m + " " + kind + ": undefined, " + why + "."));
    }
    const extra = ["demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference", "equalized_odds_ratio"].filter(k => k in f);
    if (extra.length) s.append(table(["Figure", "value"], extra.map(k => [k, f[k]])));
    const pick = el("select", { "aria-label": "fairness metric" }, names.map(m => el("option", { value: m }, m)));
    const box = el("div");
    const draw = () => { box.replaceChildren(chart(CHARTS.fairness[i][pick.value])); };
    pick.addEventListener("change", draw);
    s.append(el("label", {}, "chart of ", pick), box);
    draw();
  });
  return s;
}

function dataAnalysis() {
  const s = section("data-analysis", "Data analysis: " + view().name);
  const b = view().balance, c = viewCharts(state.view);
  if (c.balance) s.append(el("h3", {}, "Label and prediction balance"), chart(c.balance));
  else s.append(table(["", "mean", "std"], [["true value", b.y_true.mean, b.y_true.std], ["prediction", b.y_pred.mean, b.y_pred.std]]));
  s.append(el("h3", {}, "Label and prediction balance per sensitive group (all rows)"));
  for (const [feature, groups] of Object.entries(DOC.data_analysis.balance.sensitive_groups)) {
    const classes = Object.keys(Object.values(groups)[0].y_true);
    s.append(table([feature, "count", ...classes.flatMap(k => ["true " + k, "predicted " + k])],
      Object.entries(groups).map(([g, v]) => [g, v.count, ...classes.flatMap(k => [v.y_true[k], v.y_pred[k]])])));
  }
  s.append(el("h3", {}, "Feature distributions"));
  const grid = el("div", { class: "grid" });
  for (const [feature, spec] of Object.entries(c.distributions || {})) grid.append(el("div", {}, el("h4", {}, feature), chart(spec)));
  s.append(grid);
  return s;
}

function treeNode(nodes, id, rate) {
  const n = nodes[id];
  // The node's own side of its parent's split (bundles from before `condition`: the filter's last part).
  const own = n.condition !== undefined ? n.condition : n.filter && (n.filter.and ? n.filter.and[n.filter.and.length - 1] : n.filter);
  const label = [own ? filterText(own) : "all rows",
    " · " + n.count + " rows · ", el("span", { class: "rate" }, rate + " " + fmt(n.error_rate))];
  // A saved leaf is a cohort of the selector: offer to switch every view to it.
  const saved = VIEWS.findIndex(v => v.kind === "error_leaf" && JSON.stringify(v.filter) === JSON.stringify(n.filter));
  if (saved >= 0) label.push(" ", el("button", { type: "button", on: ["click", e => { e.preventDefault(); select.value = saved; state.view = saved; render(); }] }, "show as cohort"));
  if (n.leaf) return el("div", { class: "leaf", "data-node": id, title: filterText(n.filter) }, "• ", label);
  const d = el("details", { "data-node": id, title: filterText(n.filter) }, el("summary", {}, label));
  d.addEventListener("toggle", () => {
    if (d.open && !d.dataset.filled) { d.dataset.filled = "1"; n.children.forEach(ch => d.append(treeNode(nodes, ch, rate))); }
  });
  return d;
}

function errorAnalysis() {
  const ea = DOC.error_analysis;
  if (!ea) return null;
  const s = section("error-analysis", "Error analysis");
  const rate = ea.error_metric === "error_rate" ? "error rate" : "mean absolute error";
  const errors = ea.cohort_errors, nodes = ea.tree.nodes;
  const saved = errors.worst_leaves.length + errors.best_leaves.length;
  s.append(el("p", { class: "muted" }, "Where the model is wrong: one tree fitted to the error over all " + ea.n_rows + " test rows; open a node to see its children. " +
    (nodes.length === 1 ? "The tree found no split: the error is alike everywhere it could look (or there are too few rows to split)."
      : saved ? "Leaves with a higher " + rate + " than all data (" + fmt(errors.overall.error_rate) + ") are in the cohort selector as worst leaves, those with a lower one as best leaves."
        : "No leaf's " + rate + " differs from all data's (" + fmt(errors.overall.error_rate) + ").")));
  s.append(el("div", { id: "error-tree" }, treeNode(nodes, 0, rate)));
  s.append(el("h3", {}, "Errors per cohort"));
  s.append(table(["Rows", "count", rate], [["All data", errors.overall.count, errors.overall.error_rate],
    ...errors.cohorts.map(c => [c.name, c.count, c.error_rate]),
    ...errors.sensitive_groups.map(g => [g.feature + " = " + g.group, g.count, g.error_rate])]));
  if (ea.heatmap) {
    const axes = ea.heatmap.axes;
    s.append(el("h3", {}, "Heatmap: " + rate + " by " + axes.map(a => a.feature).join(" × ")));
    if (axes.length === 1) s.append(table([axes[0].feature, "count", rate], ea.heatmap.cells.map(c => [c.bins[0], c.count, c.error_rate])));
    else {
      const ncol = axes[1].bins.length;
      s.append(table([axes[0].feature + " \\ " + axes[1].feature, ...axes[1].bins.map(b => b.label)],
        axes[0].bins.map((b, r) => [b.label, ...ea.heatmap.cells.slice(r * ncol, (r + 1) * ncol).map(c => fmt(c.error_rate) + " (" + c.count + ")")])));
    }
  }
  return s;
}

function importance() {
  const ex = DOC.explanation;
  if (!ex) return null;
  const s = section("feature-importance", "Feature importance");
  s.append(el("p", { class: "muted" }, "Mean absolute contribution of each raw feature over " + ex.n_rows + " explained rows; method " + ex.method + (ex.fidelity ? " (the mimic's " + ex.fidelity.metric + " against the model: " + fmt(ex.fidelity.value) + ")" : "") + "."));
  for (const n of ex.notes) s.append(el("p", { class: "warn" }, n));
  const c = viewCharts(state.view);
  s.append(el("h3", {}, "Global and for " + view().name), c.importance ? chart(c.importance) : el("p", { class: "muted" }, "not computed for this cohort"));
  s.append(table(["Feature", "importance"], ex.global.map(f => [f.feature, f.importance])));
  s.append(el("h3", {}, "Local importance of one row"));
  s.append(rowPicker(r => r.local_importance, row => table(["Feature", "value", "contribution"],
    Object.entries(row.local_importance).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1])).map(([f, v]) => [f, fmt(row.features[f]), v]))));
  return s;
}

function rowPicker(has, render) {
  const rows = DATA.rows.filter(has);
  if (!rows.length) return el("p", { class: "muted" }, "no row in the page's sample has this view");
  const pick = el("select", { "aria-label": "row" }, rows.map(r => el("option", { value: r.row_id }, "row " + r.row_id + " (prediction " + fmt(r.y_pred) + ", true " + fmt(r.y_true) + ")")));
  if (rows.some(r => r.row_id === state.row)) pick.value = String(state.row);  // kept across cohort switches
  const box = el("div", { class: "row-view" });
  const draw = () => { state.row = Number(pick.value); box.replaceChildren(render(rows.find(r => String(r.row_id) === pick.value))); };
  pick.addEventListener("change", draw);
  draw();
  return el("div", {}, el("label", {}, "Row ", pick), el("span", { class: "muted" }, " (" + rows.length + " rows have this view in the page)"), box);
}

function counterfactuals() {
  const cf = DOC.counterfactual;
  if (!cf) return null;
  const s = section("counterfactuals", "Counterfactuals and what-if");
  // Results written before aim, held_fixed_note and already_desired existed: the older wording.
  const already = c => c.already_desired || 0;
  const n = already(cf.totals);
  s.append(el("p", { class: "muted" }, (cf.engine === "dice" ? "dice-ml (" + cf.method + ")" : "The batched random search") + " searched " + cf.totals.requested + " counterfactuals for " + (cf.totals.rows - n) + " rows; each was checked with the model: " + cf.totals.found + " found, " + cf.totals.valid + " valid (one identical to its row is never counted); " + cf.totals.rows_with_valid + " rows have at least one." +
    (n ? " " + n + (n === 1 ? " row " : " rows ") + (cf.desired_range.length ? "already had a prediction in the desired range" : "already had the desired prediction") + ": not searched, not counted as explained." : "") +
    " Target: " + (cf.aim || (cf.desired_range.length ? "a prediction from " + cf.desired_range.map(fmt).join(" to ") : cf.desired_class === "opposite" ? "the opposite class" : "class " + cf.desired_class)) + "." +
    (cf.held_fixed_note ? " " + cf.held_fixed_note : "")));
  s.append(table(["Rows", "selected", "already desired", "with a valid counterfactual", "mean features changed", "mean distance"],
    [["All selected rows", cf.totals.rows, n, cf.totals.rows_with_valid, cf.totals.mean_sparsity, cf.totals.mean_proximity],
      ...cf.cohorts.map(c => [c.name, c.rows, already(c), c.rows_with_valid, c.mean_sparsity, c.mean_proximity]),
      ...cf.sensitive_groups.map(g => [g.feature + " = " + g.group, g.rows, already(g), g.rows_with_valid, g.mean_sparsity, g.mean_proximity])]));
  s.append(el("h3", {}, "What if: one row and its counterfactuals"));
  s.append(rowPicker(r => r.counterfactuals && r.counterfactuals.length, row => el("div", {},
    table(["#", "prediction would become", "if"], row.counterfactuals.map((c, i) => [i + 1, fmt(c.prediction),
      c.changes.map(ch => ch.feature + ": " + fmt(ch.from) + " → " + fmt(ch.to)).join("; ")])))));
  return s;
}

function causal() {
  const ca = DOC.causal;
  if (!ca) return null;
  const s = section("causal", "Causal effects");
  s.append(el("p", { class: "muted" }, "Effect of each treatment on the " + ca.outcome + ", in its own unit (per 1 unit of a numeric treatment, or of a level against the control level), estimated from the data (econml, double machine learning on " + ca.fit.train_rows + " of " + ca.fit.train_rows_available + " train rows), not from the model. A causal reading assumes every confounder is among the features. Better outcome in this audit: " + ca.direction.better + "."));
  s.append(el("h3", {}, "What each treatment's figures can be used for"));
  s.append(table(["Treatment", "role", "first-stage R²", "assessment"], ca.treatments.map(t => [t.feature,
    t.role === "attribute" ? "attribute, not a lever" : "lever", t.identification.first_stage_r2, t.verdict])));
  for (const w of ca.warnings) s.append(el("p", { class: "warn" }, "Warning while fitting" + (w.treatments.length ? " (" + w.treatments.join(", ") + ")" : "") + ": " + w.plain + ". econml said: " + w.message));
  const unit = e => e.level !== null ? e.level + " vs " + e.control : "per 1 unit of " + e.treatment;
  // No interval or p-value where the inference is invalid: say so rather than print n/a.
  const rows = effects => effects.map(e => [e.treatment, unit(e), e.point,
    e.p_value === null ? "not shown: inference invalid" : "[" + fmt(e.ci_lower) + ", " + fmt(e.ci_upper) + "]",
    e.p_value === null ? "not shown" : e.p_value]);
  const notEstimable = ca.treatments.filter(t => !t.estimable).map(t => [t.feature, "not estimable from these data", "", "", ""]);
  if (CHARTS.causal_global) s.append(chart(CHARTS.causal_global));
  s.append(table(["Treatment", "unit", "effect", "interval", "p-value"], [...rows(ca.global_effects), ...notEstimable]));
  const c = viewCharts(state.view);
  s.append(el("h3", {}, "Effects in " + view().name), c.causal ? chart(c.causal) : el("p", { class: "muted" }, "not computed for this cohort"));
  if (!ca.policies.length && !ca.treatments.some(t => t.role === "attribute")) return s;
  s.append(el("h3", {}, "Treatment policies"));
  s.append(el("p", { class: "muted" }, "A policy is one tree saying, for each group of rows, which option to take; every row's recommendation is its leaf's. Gain: " + ca.direction.gain + "; for a numeric treatment, per move of a tenth of its typical value (the step)."));
  for (const t of ca.treatments) {
    if (t.role === "attribute" && t.estimable) s.append(el("p", { class: "muted" }, t.feature + ": attribute, not a lever (" + t.protected_as + " feature): no policy and no recommendation."));
  }
  for (const p of ca.policies) {
    if (!p.tree.length) continue;
    s.append(el("h4", {}, p.treatment + ": mean gain of the policy " + fmt(p.policy_gain) + (p.step !== undefined ? " (step " + fmt(p.step) + ")" : "")));
    if (p.evidence && p.evidence.note) s.append(el("p", { class: "warn" }, "Not supported by the data: " + p.evidence.note + "."));
    s.append(table(["Policy tree leaf", "rows", "recommended", "mean gain"], [
      ...p.tree.filter(n => n.leaf).map(n => [filterText(n.filter), n.count, n.treatment, n.gain]),
      ["Recommendations (" + p.rows + " rows)", "", Object.entries(p.recommendation_counts).map(([k, v]) => k + ": " + v + " rows").join("; "), ""]]));
    s.append(table(["Row", "current", "recommended", "change of the outcome", "expected gain"], p.top_recommendations.map(r => [String(r.row_id), fmt(r.current), r.recommended, r.outcome_change, r.gain])));
  }
  return s;
}

function cohorts() {
  const s = section("cohorts", "Cohorts");
  s.append(table(["Cohort", "kind", "rows", "filter"], VIEWS.map(v => [v.name, v.kind, v.count, v.filter ? filterText(v.filter) : (v.kind === "all" ? "all rows" : v.kind === "group" ? "a group of a sensitive feature" : "")])));
  s.append(el("p", { class: "muted" }, "Machine-readable results: insights.json and tables/*.parquet beside this page."));
  return s;
}

function render() {
  const sections = [overview(), fairness(), dataAnalysis(), errorAnalysis(), importance(), counterfactuals(), causal(), cohorts()].filter(Boolean);
  app.replaceChildren(...sections);
  document.getElementById("nav").replaceChildren(...sections.map(s => el("a", { href: "#" + s.id }, s.querySelector("h2").textContent.split(":")[0])));
}

const select = document.getElementById("cohort"), compare = document.getElementById("compare");
const kinds = { all: "", cohort: "cohort: ", group: "group: ", error_leaf: "" };  // leaves' names say "Error tree"
VIEWS.forEach((v, i) => {
  const label = kinds[v.kind] + v.name + " (" + v.count + " rows)";
  select.append(el("option", { value: i }, label));
  compare.append(el("option", { value: i }, label));
});
compare.size = Math.min(3, VIEWS.length);
select.addEventListener("change", () => { state.view = Number(select.value); render(); });
compare.addEventListener("change", () => { state.compare = [...compare.selectedOptions].map(o => Number(o.value)); render(); });
render();
})();
