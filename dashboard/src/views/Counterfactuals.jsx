import { useContext, useMemo, useState } from "preact/hooks";
import { Ctx } from "../context.js";
import { Chart } from "../chart.jsx";
import { count, fmt } from "../format.js";
import { Note, Select, Table, Warn } from "../ui.jsx";

const CONFIG = {
  font: "DejaVu Sans, sans-serif",
  axis: { labelFontSize: 10, titleFontSize: 11 },
  view: { stroke: null },
};

// Results written before aim, held_fixed_note and already_desired existed: the older wording.
const already = (c) => c.already_desired || 0;

function Totals({ cf }) {
  const t = cf.totals;
  const n = already(t);
  const target =
    cf.aim ||
    (cf.desired_range && cf.desired_range.length
      ? "a prediction from " + cf.desired_range.map(fmt).join(" to ")
      : cf.desired_class === "opposite"
        ? "the opposite class"
        : "class " + cf.desired_class);
  return (
    <div>
      <p class="muted" data-testid="counterfactual-totals">
        {cf.engine === "dice" ? "dice-ml (" + cf.method + ")" : "The batched random search"} searched {count(t.requested)}{" "}
        counterfactuals for {count(t.rows - n)} rows; each was checked with the model: {count(t.found)} found,{" "}
        {count(t.valid)} valid (one identical to its row is never counted); {count(t.rows_with_valid)} rows have at least
        one.
        {n
          ? " " +
            n +
            (n === 1 ? " row " : " rows ") +
            (cf.desired_range && cf.desired_range.length
              ? "already had a prediction in the desired range"
              : "already had the desired prediction") +
            ": not searched, not counted as explained."
          : ""}{" "}
        Target: {target}.{cf.held_fixed_note ? " " + cf.held_fixed_note : ""}
      </p>
      {cf.varied_protected && cf.varied_protected.length ? (
        <Warn>
          Protected features the configuration lets the search change: {cf.varied_protected.join(", ")}. Counterfactuals
          changing them say nothing a person could act on.
        </Warn>
      ) : null}
      <Table
        header={["Rows", "selected", "already desired", "with a valid counterfactual", "mean features changed", "mean distance"]}
        rows={[
          ["All selected rows", t.rows, n, t.rows_with_valid, t.mean_sparsity, t.mean_proximity],
          ...(cf.cohorts || []).map((c) => [c.name, c.rows, already(c), c.rows_with_valid, c.mean_sparsity, c.mean_proximity]),
          ...(cf.sensitive_groups || []).map((g) => [
            g.feature + " = " + g.group,
            g.rows,
            already(g),
            g.rows_with_valid,
            g.mean_sparsity,
            g.mean_proximity,
          ]),
        ]}
        countColumns={[1, 2, 3]}
        testid="counterfactual-summary"
      />
      {cf.rows_without_valid && cf.rows_without_valid.length ? (
        <p class="muted">
          {count(cf.rows_without_valid.length)} selected rows have no valid counterfactual (
          {Object.entries(
            cf.rows_without_valid.reduce((acc, r) => ({ ...acc, [r.status]: (acc[r.status] || 0) + 1 }), {}),
          )
            .map(([status, k]) => status + ": " + k)
            .join("; ")}
          ).
        </p>
      ) : null}
    </div>
  );
}

function importanceSpec(rows) {
  return {
    config: CONFIG,
    width: 420,
    height: Math.max(40, 16 * rows.length),
    data: { values: rows.map((r) => ({ label: r.feature, value: r.importance })) },
    mark: { type: "bar", color: "#4c78a8" },
    encoding: {
      y: { field: "label", type: "nominal", sort: rows.map((r) => r.feature), title: "feature", axis: { labelLimit: 220 } },
      x: {
        field: "value",
        type: "quantitative",
        title: "mean share of a row's counterfactuals changing it",
        scale: { domain: [0, 1] },
        axis: { format: "%", tickCount: 5 },
      },
      tooltip: [
        { field: "label", type: "nominal", title: "feature" },
        { field: "value", type: "quantitative", title: "share", format: ".1%" },
      ],
    },
  };
}

const same = (a, b) => a === b || (typeof a === "number" && typeof b === "number" && Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a)));

// One row and its counterfactuals: the original first, a column per feature, changed cells marked.
function CounterfactualTable({ row, features, held, showAll }) {
  const cfs = row.counterfactuals;
  const changedIn = cfs.map((c) => new Map(c.changes.map((ch) => [ch.feature, ch])));
  const changedAnywhere = new Set(cfs.flatMap((c) => c.changes.map((ch) => ch.feature)));
  const columns = showAll ? features : features.filter((f) => changedAnywhere.has(f));
  const original = row.y_pred;
  return (
    <div>
      <p class="muted">
        Row {row.row_id} and its {cfs.length} counterfactual{cfs.length === 1 ? "" : "s"}: changed values are marked
        "from → to".
      </p>
      {/* Focusable: a wide table scrolls, and the keyboard must reach it. */}
      <div class="table-wrap" tabIndex={0} role="region" aria-label={"Row " + row.row_id + " and its counterfactuals"}>
      <table data-testid="counterfactuals" class="counterfactuals" style={{ whiteSpace: "nowrap" }}>
        <thead>
          <tr>
            <th scope="col" class="text">
              Row
            </th>
            <th scope="col" class="text">
              predicted outcome
            </th>
            {columns.map((f) => (
              <th scope="col" class="text" title={held.has(f) ? "held fixed (" + held.get(f) + ")" : undefined}>
                {f}
                {held.has(f) ? <span class="muted"> (held fixed)</span> : null}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          <tr class="original">
            <th scope="row" class="text">
              original (true: {fmt(row.y_true)})
            </th>
            <td class="text">{fmt(original)}</td>
            {columns.map((f) => (
              <td class="text">{fmt(row.features[f])}</td>
            ))}
          </tr>
          {cfs.map((c, k) => {
            const moved = !same(c.prediction, original);
            return (
              <tr>
                <th scope="row" class="text">
                  counterfactual {k + 1}
                </th>
                <td
                  class={moved ? "text changed" : "text"}
                  title={moved ? "the prediction changes from " + fmt(original) + " to " + fmt(c.prediction) : undefined}
                >
                  {moved ? fmt(original) + " → " + fmt(c.prediction) : fmt(c.prediction)}
                </td>
                {columns.map((f) => {
                  const ch = changedIn[k].get(f);
                  if (!ch) return <td class="text unchanged">{fmt(row.features[f])}</td>;
                  return (
                    <td class="text changed" title={f + " changed from " + fmt(ch.from) + " to " + fmt(ch.to)}>
                      {fmt(ch.from)} → <strong>{fmt(ch.to)}</strong>
                    </td>
                  );
                })}
              </tr>
            );
          })}
        </tbody>
      </table>
      </div>
    </div>
  );
}

export default function Counterfactuals() {
  const ctx = useContext(Ctx);
  const { doc, data, table, active } = ctx;
  const cf = doc.counterfactual;
  const [showAll, setShowAll] = useState(false);
  // The carried rows with counterfactuals, kept when they are in the active cohort.
  const { rows, outside } = useMemo(() => {
    const withCf = (data.rows || []).filter((r) => r.counterfactuals && r.counterfactuals.length);
    if (active.source === "all") return { rows: withCf, outside: 0 };
    const inCohort = [];
    let unknown = 0;
    for (const r of withCf) {
      const i = table.indexOf(r.row_id);
      if (i < 0) unknown += 1;
      else if (active.mask[i]) inCohort.push(r);
    }
    return { rows: inCohort, outside: unknown };
  }, [data, table, active]);
  if (!cf) {
    return (
      <section>
        <h2>Counterfactuals</h2>
        <Note>The audit ran no counterfactual step.</Note>
      </section>
    );
  }
  const held = new Map((cf.held_fixed || []).map((h) => [h.feature, h.reason]));
  const features = cf.features || (rows.length ? Object.keys(rows[0].features) : []);
  const row = rows.find((r) => r.row_id === ctx.rowId) || rows[0] || null;
  const unchanged = row
    ? features.filter((f) => !row.counterfactuals.some((c) => c.changes.some((ch) => ch.feature === f))).length
    : 0;
  return (
    <section>
      <h2>Counterfactuals and what-if: {active.name}</h2>
      <Totals cf={cf} />
      {cf.global_importance && cf.global_importance.length ? (
        <div>
          <h3>Which features the counterfactuals change</h3>
          <p class="muted">
            Per feature, the share of a row's valid counterfactuals that change it, averaged over the{" "}
            {count(cf.totals.rows_with_valid)} rows with one (all the step's selected rows, not only this cohort's).
          </p>
          <Chart
            spec={importanceSpec(cf.global_importance)}
            label="Mean share of counterfactuals changing each feature"
            testid="counterfactual-importance"
          />
        </div>
      ) : null}
      <h3>One row and its counterfactuals</h3>
      {!row ? (
        <Note>
          No row of this cohort among the page's rows has a counterfactual
          {outside ? " (" + count(outside) + " rows with counterfactuals are not among the carried rows, so the page cannot tell their cohort)" : ""}.
        </Note>
      ) : (
        <div>
          <Select
            label="Row"
            name="row"
            value={row.row_id}
            options={rows.map((r) => ({
              value: r.row_id,
              label: "row " + r.row_id + " (true " + fmt(r.y_true) + ", predicted " + fmt(r.y_pred) + ")",
            }))}
            onChange={(v) => ctx.setRowId(Number(v))}
          />
          <span class="muted">
            {" "}
            {count(rows.length)} rows of this cohort in the page have counterfactuals
            {outside ? "; " + count(outside) + " others are not among the carried rows (their cohort is unknown)" : ""}
          </span>
          {unchanged ? (
            <p>
              <label>
                <input type="checkbox" name="show-unchanged" checked={showAll} onChange={(e) => setShowAll(e.currentTarget.checked)} />{" "}
                show the {unchanged} feature{unchanged === 1 ? "" : "s"} no counterfactual of this row changes
              </label>
            </p>
          ) : null}
          <CounterfactualTable row={row} features={features} held={held} showAll={showAll} />
        </div>
      )}
    </section>
  );
}
