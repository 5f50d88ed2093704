import { useContext, useMemo } from "preact/hooks";
import { Ctx } from "../context.js";
import { Chart } from "../chart.jsx";
import { count, effectUnit, filterText, fmt } from "../format.js";
import { Note, Table, Warn } from "../ui.jsx";
import { carriedText } from "./Importance.jsx";

const CONFIG = {
  font: "DejaVu Sans, sans-serif",
  axis: { labelFontSize: 10, titleFontSize: 11 },
  view: { stroke: null },
};
// Charts next to each other when the page is wide enough, each at its own size.
const SIDE = { display: "flex", flexWrap: "wrap", gap: "0 1.5rem", alignItems: "flex-start" };
const PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#eeca3b", "#9d755d"];

const role = (t) => (t && t.role === "attribute" ? "attribute, not a lever" : "lever");

// The bundle's full-data effects of a bundle cohort (the causal step's figure for it), if any.
function cohortEffects(ca, cohort) {
  const view = cohort && cohort.source !== "editor" ? cohort.view : null;
  if (!view) return null;
  if (view.kind === "all") return { name: "all " + count(view.count) + " test rows", effects: ca.test_effects || [] };
  const entry =
    view.kind === "cohort"
      ? (ca.cohorts || []).find((c) => c.name === view.name)
      : view.kind === "group"
        ? (ca.sensitive_groups || []).find((g) => g.feature + " = " + g.group === view.name)
        : null;
  if (!entry) return null;
  return { name: view.name + " (all " + count(entry.count) + " test rows)", effects: entry.effects || [] };
}

// One treatment's effects (each level, each scope) on the treatment's own axis.
function effectSpec(treatment, rows, outcome) {
  const scopes = [...new Set(rows.map((r) => r.scope))];
  const y = { field: "row", type: "nominal", sort: rows.map((r) => r.row), title: null, axis: { labelLimit: 260 } };
  const axis = { labelOverlap: "greedy", labelSeparation: 4, tickCount: 5 }; // long decimals kept apart
  const xTitle = "change of the " + outcome;
  return {
    config: CONFIG,
    width: 340,
    height: Math.max(40, 18 * rows.length) + 10,
    layer: [
      {
        data: { values: rows },
        transform: [{ filter: "isValid(datum.ci_lower) && isValid(datum.ci_upper)" }],
        mark: { type: "rule", strokeWidth: 2, color: "#555555" },
        encoding: { y, x: { field: "ci_lower", type: "quantitative", title: xTitle, axis }, x2: { field: "ci_upper" } },
      },
      {
        data: { values: rows },
        mark: { type: "point", filled: true, size: 60 },
        encoding: {
          y,
          x: { field: "point", type: "quantitative", title: xTitle, axis },
          color: {
            field: "scope",
            type: "nominal",
            title: "rows",
            scale: { domain: scopes, range: PALETTE },
            legend: { orient: "bottom", labelLimit: 400 },
          },
          tooltip: [
            { field: "row", type: "nominal", title: treatment },
            { field: "scope", type: "nominal", title: "rows" },
            { field: "point", type: "quantitative", title: "effect", format: ".4g" },
            { field: "ci_lower", type: "quantitative", title: "interval from", format: ".4g" },
            { field: "ci_upper", type: "quantitative", title: "interval to", format: ".4g" },
          ],
        },
      },
      {
        data: { values: [{ x: 0 }] },
        mark: { type: "rule", color: "#c0392b", strokeDash: [4, 3] },
        encoding: { x: { field: "x", type: "quantitative", title: xTitle, axis } },
      },
    ],
  };
}

function histogramSpec(values, title) {
  return {
    config: CONFIG,
    width: 340,
    height: 140,
    data: { values: values.map((v) => ({ v })) },
    mark: { type: "bar", color: "#4c78a8" },
    encoding: {
      x: { field: "v", type: "quantitative", bin: { maxbins: 30 }, title },
      y: { aggregate: "count", type: "quantitative", title: "rows" },
      tooltip: [
        { field: "v", type: "quantitative", bin: { maxbins: 30 }, title },
        { aggregate: "count", type: "quantitative", title: "rows" },
      ],
    },
  };
}

// The treatment a per-row effect column ("<treatment> (<level>)" or "<treatment>") is of.
function treatmentOf(ca, key) {
  return (ca.treatments || []).find((t) => key === t.feature || key.startsWith(t.feature + " (")) || null;
}

function Effects({ ca, active }) {
  const mine = cohortEffects(ca, active);
  const treatments = [...new Set((ca.global_effects || []).map((e) => e.treatment))];
  const fitScope = "fit data (" + count(ca.fit.train_rows) + " train rows)";
  const byTreatment = (t) => (ca.treatments || []).find((x) => x.feature === t);
  const tableRows = [];
  const rowOf = (e, scope) => [
    e.treatment,
    effectUnit(e, ca.treatments),
    scope,
    e.point,
    e.p_value === null || e.ci_lower === null ? "not shown: inference invalid" : "[" + fmt(e.ci_lower) + ", " + fmt(e.ci_upper) + "]",
    e.p_value === null ? "not shown" : e.p_value,
  ];
  return (
    <div>
      <h3>Average effect of each treatment</h3>
      <p class="muted">
        Each treatment on its own axis, in its own unit; the grey line is the interval ({fmt(100 * (1 - (ca.fit.alpha ?? 0.05)))}%),
        the dashed red line no effect. {mine ? "Shown for the fit data and for " + active.name + " (full data, the causal step's figures)." : "Shown for the fit data" + (active.source === "all" ? "." : "; the step computed no figure for " + active.name + " (see the per-row effects below).")}
      </p>
      <div class="effects" style={SIDE} data-testid="causal-effects">
        {treatments.map((t) => {
          const global = ca.global_effects.filter((e) => e.treatment === t);
          const cohort = mine ? mine.effects.filter((e) => e.treatment === t) : [];
          const numeric = global[0].level === null || global[0].level === undefined;
          const unit = numeric ? effectUnit(global[0], ca.treatments) : "of each level vs " + global[0].control;
          const perUnit = unit.startsWith("per 1 unit");
          const rows = [
            ...global.map((e) => ({ ...e, scope: fitScope })),
            ...cohort.map((e) => ({ ...e, scope: mine.name })),
          ].map((e) => ({
            row: (perUnit ? t : effectUnit(e, ca.treatments)) + (mine ? (e.scope === fitScope ? " · fit data" : " · " + (active.source === "all" ? "test rows" : "this cohort")) : ""),
            scope: e.scope,
            point: e.point,
            ci_lower: e.p_value === null ? null : e.ci_lower,
            ci_upper: e.p_value === null ? null : e.ci_upper,
          }));
          global.forEach((e) => tableRows.push(rowOf(e, fitScope)));
          cohort.forEach((e) => tableRows.push(rowOf(e, mine.name)));
          const tr = byTreatment(t);
          const title = t + ": effect " + unit + (tr && tr.role === "attribute" ? " (attribute, not a lever)" : "");
          return (
            <div>
              <h4>{title}</h4>
              <Chart spec={effectSpec(t, rows, ca.outcome)} label={"Effect of " + t + " on the " + ca.outcome + " with its interval"} />
            </div>
          );
        })}
      </div>
      <Table
        header={["Treatment", "unit", "rows", "effect", "interval", "p-value"]}
        rows={[
          ...tableRows,
          ...(ca.treatments || []).filter((t) => !t.estimable).map((t) => [t.feature, "not estimable from these data", "", "", "", ""]),
        ]}
        testid="causal-global"
      />
    </div>
  );
}

function Individual({ ca }) {
  const ctx = useContext(Ctx);
  const { table, active } = ctx;
  const effects = table.causalEffects;
  const stats = useMemo(() => {
    if (!effects) return [];
    return Object.entries(effects).map(([key, col]) => {
      const values = [];
      for (let i = 0; i < table.n; i++) if (active.mask[i] && !Number.isNaN(col[i])) values.push(col[i]);
      let sum = 0;
      let min = Infinity;
      let max = -Infinity;
      for (const v of values) {
        sum += v;
        if (v < min) min = v;
        if (v > max) max = v;
      }
      return { key, values, mean: values.length ? sum / values.length : null, min: values.length ? min : null, max: values.length ? max : null };
    });
  }, [effects, table, active]);
  return (
    <div data-testid="causal-individual">
      <h3>Per-row effects in {active.name}</h3>
      {!effects ? (
        <Note>The page carries no per-row effects (a bundle gathered before they were carried, or none computed).</Note>
      ) : (
        <div>
          <p class="scope muted">
            {"The effect the causal model estimates for each row, over the " +
              count(Math.max(0, ...stats.map((s) => s.values.length))) +
              " rows of this cohort it computed one for (the causal step's rows: " +
              (ca.local_effects ? ca.local_effects.rows + ", " + count(ca.local_effects.count) + " test rows" : "n/a") +
              "), of the " +
              count(active.size) +
              (table.sampled ? " sampled" : " test") +
              " rows of this cohort (" +
              carriedText(table) +
              ")."}
          </p>
          <Table
            header={["Effect", "role", "rows", "mean", "min", "max"]}
            rows={stats.map((s) => [s.key, role(treatmentOf(ca, s.key)), s.values.length, s.mean, s.min, s.max])}
            countColumns={[2]}
            testid="causal-individual-table"
          />
          <div style={SIDE}>
            {stats
              .filter((s) => s.values.length)
              .map((s) => {
                const t = treatmentOf(ca, s.key);
                const level = t && s.key.startsWith(t.feature + " (") ? s.key.slice(t.feature.length + 2, -1) : s.key;
                const what = t && t.kind === "numeric" ? effectUnit({ treatment: t.feature }, ca.treatments) : "of " + level + " vs " + (t ? t.control : "the control");
                return (
                  <div>
                    <h4>
                      {s.key}
                      {t && t.role === "attribute" ? " (attribute, not a lever)" : ""}
                    </h4>
                    {s.min === s.max ? (
                      <p class="muted">
                        Every one of the {count(s.values.length)} rows: {fmt(s.min)} (the model's effect does not vary from
                        row to row here).
                      </p>
                    ) : (
                      <Chart
                        spec={histogramSpec(s.values, "effect " + what + " on the " + ca.outcome)}
                        label={"Histogram of the per-row effects of " + s.key + " over " + s.values.length + " rows of " + active.name}
                      />
                    )}
                  </div>
                );
              })}
          </div>
        </div>
      )}
    </div>
  );
}

// The node's own condition: the last part of its filter (the tree adds one per level).
function ownCondition(node) {
  const f = node.filter;
  if (!f) return "all rows";
  return filterText(f.and ? f.and[f.and.length - 1] : f);
}

const clip = (text, n) => (text.length > n ? text.slice(0, n - 1) + "…" : text);

// A policy tree drawn as boxes and lines: each node its condition and rows, each leaf its
// recommendation and gain.
function PolicyTree({ policy }) {
  const nodes = new Map(policy.tree.map((n) => [n.id, n]));
  const root = policy.tree.find((n) => n.parent === null || n.parent === undefined) || policy.tree[0];
  const W = 176;
  const H = 58;
  const GAP = 14;
  const ROW = H + 34;
  const pos = new Map();
  let leaves = 0;
  const place = (n) => {
    const kids = (n.children || []).map((c) => nodes.get(c)).filter(Boolean);
    if (!kids.length) {
      pos.set(n.id, { x: leaves * (W + GAP), y: n.depth * ROW });
      leaves += 1;
    } else {
      kids.forEach(place);
      const xs = kids.map((k) => pos.get(k.id).x);
      pos.set(n.id, { x: (Math.min(...xs) + Math.max(...xs)) / 2, y: n.depth * ROW });
    }
  };
  place(root);
  const depth = Math.max(...policy.tree.map((n) => n.depth));
  const width = leaves * (W + GAP) - GAP + 2;
  const height = depth * ROW + H + 2;
  const options = [...new Set(policy.tree.filter((n) => n.leaf).map((n) => String(n.treatment)))];
  const colour = (t) => PALETTE[options.indexOf(String(t)) % PALETTE.length];
  const describe = (n) =>
    filterText(n.filter) +
    ": " +
    count(n.count) +
    " rows" +
    (n.leaf ? "; recommended: " + n.treatment + "; mean gain " + fmt(n.gain) : "");
  const drawn = [...pos.keys()].map((id) => nodes.get(id));
  return (
    // Focusable: a wide tree scrolls, and the keyboard must reach it.
    <div class="tree-wrap" style={{ overflowX: "auto", maxWidth: "100%" }} tabIndex={0} role="region" aria-label={"Policy tree for " + policy.treatment}>
      <svg
        data-testid="policy-tree"
        role="group"
        aria-label={"Policy tree for " + policy.treatment + ": " + drawn.filter((n) => n.leaf).length + " leaves"}
        width={width}
        height={height}
        viewBox={"-1 -1 " + width + " " + height}
        style={{ fontFamily: "DejaVu Sans, sans-serif", fontSize: "11px" }}
      >
        <g aria-hidden="true">
          {drawn
            .filter((n) => n.parent !== null && n.parent !== undefined && pos.has(n.parent))
            .map((n) => {
              const a = pos.get(n.parent);
              const b = pos.get(n.id);
              return <path d={`M${a.x + W / 2},${a.y + H} C${a.x + W / 2},${a.y + H + 17} ${b.x + W / 2},${b.y - 17} ${b.x + W / 2},${b.y}`} fill="none" stroke="#999" />;
            })}
        </g>
        {drawn.map((n) => {
          const p = pos.get(n.id);
          const fill = n.leaf ? colour(n.treatment) : "#f3f3f3";
          return (
            <g role="img" aria-label={describe(n)} data-node-id={n.id} transform={`translate(${p.x},${p.y})`}>
              <title>{describe(n)}</title>
              <rect width={W} height={H} rx="4" fill="#fff" stroke="#888" />
              <rect width="6" height={H} rx="2" fill={fill} stroke="none" />
              <text x="12" y="16" font-weight="bold">
                {clip(ownCondition(n), 28)}
              </text>
              <text x="12" y="31">
                {count(n.count)} rows
              </text>
              {n.leaf ? (
                <text x="12" y="47">
                  → {clip(String(n.treatment), 12)} (gain {fmt(n.gain)})
                </text>
              ) : null}
            </g>
          );
        })}
      </svg>
    </div>
  );
}

function Policies({ ca }) {
  const attributes = (ca.treatments || []).filter((t) => t.role === "attribute" && t.estimable);
  if (!(ca.policies || []).length && !attributes.length) return null;
  return (
    <div>
      <h3>Treatment policies</h3>
      <p class="muted">
        A policy is one tree saying, for each group of rows, which option to take; every row's recommendation is its
        leaf's. Gain: {ca.direction ? ca.direction.gain : "the expected change of the outcome"}; for a numeric treatment,
        per move of a tenth of its typical value (the step). Over all test rows.
      </p>
      {attributes.map((t) => (
        <p class="muted">
          {t.feature}: attribute, not a lever ({t.protected_as || "protected"} feature): no policy and no recommendation.
        </p>
      ))}
      {(ca.policies || [])
        .filter((p) => p.tree && p.tree.length)
        .map((p) => (
          <div class="policy">
            <h4>
              {p.treatment}: mean gain of the policy {fmt(p.policy_gain)}
              {p.step !== undefined ? " (step " + fmt(p.step) + ")" : ""}
            </h4>
            {p.evidence && p.evidence.note ? <Warn>Not supported by the data: {p.evidence.note}.</Warn> : null}
            {p.excluded_rows ? (
              <p class="muted">{count(p.excluded_rows)} rows have a current level the fit never saw: no recommendation for them.</p>
            ) : null}
            <PolicyTree policy={p} />
            <Table
              header={["Policy tree leaf", "rows", "recommended", "mean gain"]}
              rows={[
                ...p.tree.filter((n) => n.leaf).map((n) => [filterText(n.filter), n.count, String(n.treatment), n.gain]),
                [
                  "Recommendations (" + count(p.rows) + " rows)",
                  "",
                  Object.entries(p.recommendation_counts || {})
                    .map(([k, v]) => k + ": " + count(v) + " rows")
                    .join("; "),
                  "",
                ],
              ]}
              countColumns={[1]}
              testid="policy-leaves"
            />
            {p.always_treat_gains && Object.keys(p.always_treat_gains).length ? (
              <p class="muted">
                Mean gain of giving every row one option:{" "}
                {Object.entries(p.always_treat_gains)
                  .map(([k, v]) => k + " " + fmt(v))
                  .join("; ")}
                .
              </p>
            ) : null}
            {p.top_recommendations && p.top_recommendations.length ? (
              <Table
                header={["Row", "current", "recommended", "change of the outcome", "expected gain", "gain interval"]}
                rows={p.top_recommendations.map((r) => [
                  String(r.row_id),
                  fmt(r.current),
                  String(r.recommended),
                  r.outcome_change,
                  r.gain,
                  r.gain_ci_lower === null || r.gain_ci_lower === undefined ? "n/a" : "[" + fmt(r.gain_ci_lower) + ", " + fmt(r.gain_ci_upper) + "]",
                ])}
                caption={"Top " + p.top_recommendations.length + " recommendations by expected gain"}
              />
            ) : null}
          </div>
        ))}
    </div>
  );
}

export default function Causal() {
  const ctx = useContext(Ctx);
  const { doc, active } = ctx;
  const ca = doc.causal;
  if (!ca) {
    return (
      <section>
        <h2>Causal effects</h2>
        <Note>The audit ran no causal step.</Note>
      </section>
    );
  }
  const missing = ca.missing_values || {};
  const asLevel = Object.entries(missing.categorical_as_level || {});
  const median = Object.entries(missing.numeric_filled_with_median || {});
  const unseen = Object.entries(ca.unseen_categories_in_test || {});
  return (
    <section>
      <h2>Causal effects: {active.name}</h2>
      <p class="muted">
        Effect of each treatment on the {ca.outcome}, in its own unit (per 1 unit of a numeric treatment, or of a level
        against the control level), estimated from the data (econml, double machine learning on {count(ca.fit.train_rows)}{" "}
        of {count(ca.fit.train_rows_available)} train rows), not from the model. A causal reading assumes every confounder is
        among the features.{ca.direction ? " Better outcome in this audit: " + ca.direction.better + "." : ""}
      </p>
      <h3>What each treatment's figures can be used for</h3>
      <Table
        header={["Treatment", "role", "first-stage R²", "assessment"]}
        rows={(ca.treatments || []).map((t) => [
          t.feature,
          role(t),
          t.identification ? t.identification.first_stage_r2 : null,
          t.verdict,
        ])}
        testid="causal-treatments"
      />
      {(ca.untrained || []).map((u) => (
        <Warn>
          {u.feature || u.treatment}: cannot be estimated: {u.plain || u.reason || u.message}.
        </Warn>
      ))}
      {(ca.warnings || []).map((w) => (
        <Warn>
          Warning while fitting{w.treatments && w.treatments.length ? " (" + w.treatments.join(", ") + ")" : ""}
          {w.count > 1 ? ", " + w.count + " times" : ""}: {w.plain}. econml said: {w.message}
        </Warn>
      ))}
      {asLevel.length || median.length || unseen.length ? (
        <p class="muted">
          {asLevel.length ? "Missing values counted as the level (missing): " + asLevel.map(([f, n]) => f + " " + count(n)).join(", ") + ". " : ""}
          {median.length ? "Missing numbers filled with the median: " + median.map(([f, n]) => f + " " + count(n)).join(", ") + ". " : ""}
          {unseen.length ? "Test rows with a category the fit never saw: " + unseen.map(([f, n]) => f + " " + count(n)).join(", ") + "." : ""}
        </p>
      ) : null}
      {(ca.global_effects || []).length ? <Effects ca={ca} active={active} /> : <Note>No treatment could be estimated.</Note>}
      <Individual ca={ca} />
      <Policies ca={ca} />
    </section>
  );
}
