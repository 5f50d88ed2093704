import { useContext, useEffect, useRef, useState } from "preact/hooks";
import { Ctx } from "../context.js";
import { count, filterText, fmt } from "../format.js";
import { errorColour, textColour } from "../scale.js";
import { Table } from "../ui.jsx";
import { Chart } from "../chart.jsx";
import { filterKey } from "../cohorts.js";
import { metricsFromCounts } from "../metrics.js";

const NODE_W = 150;
const NODE_H = 58;
const GAP_X = 14;
const GAP_Y = 34;

const short = (text, n) => (text.length > n ? text.slice(0, n - 1) + "…" : text);

// A tidy top-down layout of the shown nodes: leaves (and collapsed nodes) side by side in
// order, each parent centred over its children.
function layout(nodes, collapsed) {
  const pos = new Map();
  let slot = 0;
  const place = (id) => {
    const n = nodes[id];
    const kids = !n.leaf && !collapsed.has(id) ? n.children : [];
    let x;
    if (!kids.length) x = slot++;
    else {
      const xs = kids.map(place);
      x = (xs[0] + xs[xs.length - 1]) / 2;
    }
    pos.set(id, { x, y: n.depth });
    return x;
  };
  place(0);
  return { pos, width: slot };
}

// The shown nodes in reading order (pre-order), for the arrow keys.
function visibleOrder(nodes, collapsed) {
  const out = [];
  const walk = (id) => {
    out.push(id);
    if (!nodes[id].leaf && !collapsed.has(id)) nodes[id].children.forEach(walk);
  };
  walk(0);
  return out;
}

// What a node shows, then its full path (a screen reader's name includes the visible text).
function nodeLabel(n, rateName) {
  const own = n.condition ? filterText(n.condition) : "All data";
  return short(own, 21) + " " + count(n.count) + " rows · " + fmt(n.error_rate) + ". Path: " + filterText(n.filter) + ": " + count(n.count) + " rows, " + rateName + " " + fmt(n.error_rate) + ", " + fmt(n.error_share * 100) + "% of all errors";
}

function ErrorTree({ ea, rateName }) {
  const ctx = useContext(Ctx);
  const nodes = ea.tree.nodes;
  const overall = nodes[0].error_rate;
  // Big trees open to depth 3; the rest on demand.
  const [collapsed, setCollapsed] = useState(() => new Set(nodes.length > 31 ? nodes.filter((n) => n.depth >= 3 && !n.leaf).map((n) => n.id) : []));
  const [focus, setFocus] = useState(0);
  const refs = useRef({});
  const wrap = useRef(null);
  const { pos, width } = layout(nodes, collapsed);
  const order = visibleOrder(nodes, collapsed);
  const depth = Math.max(...order.map((id) => nodes[id].depth)) + 1;
  const W = width * (NODE_W + GAP_X) + GAP_X;
  const H = depth * (NODE_H + GAP_Y) + 10;
  const at = (id) => {
    const p = pos.get(id);
    return { x: GAP_X + p.x * (NODE_W + GAP_X), y: 6 + p.y * (NODE_H + GAP_Y) };
  };
  // A tree wider than the page scrolls: start with the root in the middle.
  useEffect(() => {
    const el = wrap.current;
    if (el && el.scrollWidth > el.clientWidth) el.scrollLeft = at(0).x + NODE_W / 2 - el.clientWidth / 2;
  }, []);
  const activeKey = filterKey(ctx.active.filter);
  const isSelected = (n) => (n.id === 0 ? ctx.active.source === "all" : ctx.active.source !== "all" && filterKey(n.filter) === activeKey);

  const select = (n) => {
    if (n.id === 0) ctx.setActive("all");
    else ctx.setActive(ctx.addCohort({ name: "Error tree node " + n.id, filter: n.filter, source: "tree", node: n }));
  };
  const toggle = (id) => {
    const next = new Set(collapsed);
    next.has(id) ? next.delete(id) : next.add(id);
    setCollapsed(next);
  };
  const move = (id) => {
    setFocus(id);
    const el = refs.current[id];
    if (el) el.focus();
  };
  const onKey = (e, n) => {
    const i = order.indexOf(n.id);
    const open = !n.leaf && !collapsed.has(n.id);
    switch (e.key) {
      case "ArrowDown":
        if (i < order.length - 1) move(order[i + 1]);
        break;
      case "ArrowUp":
        if (i > 0) move(order[i - 1]);
        break;
      case "ArrowRight":
        if (!n.leaf && !open) toggle(n.id);
        else if (open) move(n.children[0]);
        break;
      case "ArrowLeft":
        if (open) toggle(n.id);
        else if (n.parent !== null) move(n.parent);
        break;
      case "Home":
        move(order[0]);
        break;
      case "End":
        move(order[order.length - 1]);
        break;
      case "Enter":
      case " ":
        select(n);
        break;
      default:
        return;
    }
    e.preventDefault();
  };

  return (
    <div class="tree-wrap" ref={wrap} role="region" aria-label="error tree (scrolls sideways when wide)" tabIndex={0}>
      <svg
        data-testid="error-tree"
        role="tree"
        aria-label={"Error tree: " + rateName + " per node"}
        width={W}
        height={H}
        viewBox={"0 0 " + W + " " + H}
        style={{ width: "100%", maxWidth: W + "px", minWidth: Math.round(0.75 * W) + "px", height: "auto" }}
        class="error-tree"
      >
        {order
          .filter((id) => id !== 0)
          .map((id) => {
            const a = at(nodes[id].parent);
            const b = at(id);
            const y1 = a.y + NODE_H + 8;
            return (
              <path
                class="edge"
                aria-hidden="true"
                d={"M" + (a.x + NODE_W / 2) + "," + y1 + " C" + (a.x + NODE_W / 2) + "," + (y1 + GAP_Y / 2) + " " + (b.x + NODE_W / 2) + "," + (b.y - GAP_Y / 2) + " " + (b.x + NODE_W / 2) + "," + b.y}
                stroke-width={1 + 6 * nodes[id].error_share}
              />
            );
          })}
        {order.map((id) => {
          const n = nodes[id];
          const { x, y } = at(id);
          const fill = errorColour(n.error_rate, overall);
          const ink = textColour(n.error_rate, overall);
          const selected = isSelected(n);
          const own = n.condition ? filterText(n.condition) : "All data";
          const siblings = n.parent === null ? [0] : nodes[n.parent].children;
          return (
            <g
              role="treeitem"
              data-node-id={n.id}
              tabindex={id === focus ? 0 : -1}
              aria-selected={selected ? "true" : "false"}
              aria-expanded={n.leaf ? undefined : collapsed.has(id) ? "false" : "true"}
              aria-level={n.depth + 1}
              aria-setsize={siblings.length}
              aria-posinset={siblings.indexOf(id) + 1}
              aria-label={nodeLabel(n, rateName)}
              class={"node" + (selected ? " selected" : "")}
              transform={"translate(" + x + "," + y + ")"}
              ref={(el) => (refs.current[id] = el)}
              onClick={() => {
                setFocus(id);
                select(n);
              }}
              onKeyDown={(e) => onKey(e, n)}
              onFocus={() => setFocus(id)}
            >
              <title>{nodeLabel(n, rateName)}</title>
              <rect class="box" width={NODE_W} height={NODE_H} rx="5" fill={fill} />
              <text x="7" y="16" fill={ink} class="cond">
                {short(own, 21) + " "}
              </text>
              <text x="7" y="32" fill={ink}>
                {count(n.count) + " rows · " + fmt(n.error_rate)}
              </text>
              <rect class="bar-bg" x="7" y="40" width={NODE_W - 14} height="9" rx="2" />
              <rect class="bar" x="7" y="40" width={(NODE_W - 14) * Math.max(0, Math.min(1, n.error_share))} height="9" rx="2" />
              {!n.leaf ? (
                <g
                  class="toggle"
                  aria-hidden="true"
                  transform={"translate(" + NODE_W / 2 + "," + (NODE_H + 8) + ")"}
                  onClick={(e) => {
                    e.stopPropagation();
                    toggle(id);
                  }}
                >
                  <circle r="8" />
                  <text y="4" text-anchor="middle">
                    {collapsed.has(id) ? "+" : "−"}
                  </text>
                </g>
              ) : null}
            </g>
          );
        })}
      </svg>
    </div>
  );
}

function Legend({ overall, rateName }) {
  const stops = [0, 0.5, 1, 1.5, 2].map((k) => k * overall);
  return (
    <div class="legend" aria-hidden="true">
      <span>{rateName}:</span>
      {stops.map((r, i) => (
        <span class="swatch" style={{ background: errorColour(r, overall), color: textColour(r, overall) }}>
          {fmt(r) + (i === stops.length - 1 ? "+" : "")}
        </span>
      ))}
      <span class="muted">(all data: {fmt(overall)}); the bar in a node: its share of all errors</span>
    </div>
  );
}

function Heatmap({ ea, rateName }) {
  const ctx = useContext(Ctx);
  const hm = ea.heatmap;
  const overall = ea.tree.nodes[0].error_rate;
  const axes = hm.axes;
  const cells = new Map(hm.cells.map((c) => [c.bins.join("|"), c]));
  const rows = axes[0].bins;
  const cols = axes.length > 1 ? axes[1].bins : [null];
  const [focus, setFocus] = useState([0, 0]);
  const refs = useRef({});
  const activeKey = filterKey(ctx.active.filter);
  const cellFilter = (r, c) => (c ? { and: [r.filter, c.filter] } : r.filter);
  const select = (r, c, cell) => {
    const name = "Heatmap cell: " + axes[0].feature + " " + r.label + (c ? ", " + axes[1].feature + " " + c.label : "");
    ctx.setActive(ctx.addCohort({ name, filter: cellFilter(r, c), source: "heatmap", cell }));
  };
  const move = (i, j) => {
    i = Math.max(0, Math.min(rows.length - 1, i));
    j = Math.max(0, Math.min(cols.length - 1, j));
    setFocus([i, j]);
    const el = refs.current[i + "," + j];
    if (el) el.focus();
  };
  const onKey = (e, i, j, r, c, cell) => {
    const keys = { ArrowUp: [i - 1, j], ArrowDown: [i + 1, j], ArrowLeft: [i, j - 1], ArrowRight: [i, j + 1], Home: [i, 0], End: [i, cols.length - 1] };
    if (keys[e.key]) move(...keys[e.key]);
    else if (e.key === "Enter" || e.key === " ") select(r, c, cell);
    else return;
    e.preventDefault();
  };
  const template = "minmax(6rem, max-content) repeat(" + cols.length + ", minmax(4.2rem, 1fr))";
  return (
    <div class="heatmap-wrap">
      <div
        data-testid="heatmap"
        role="grid"
        class="heatmap"
        aria-label={rateName + " by " + axes.map((a) => a.feature).join(" and ") + "; each cell: rate and rows"}
        style={{ gridTemplateColumns: template }}
      >
        <div role="row" class="hm-row">
          <div role="columnheader" class="hm-corner">
            {axes.length > 1 ? axes[0].feature + " \\ " + axes[1].feature : axes[0].feature}
          </div>
          {cols.map((c) => (
            <div role="columnheader" class="hm-head">
              {c ? c.label : rateName}
            </div>
          ))}
        </div>
        {rows.map((r, i) => (
          <div role="row" class="hm-row">
            <div role="rowheader" class="hm-label">
              {r.label}
            </div>
            {cols.map((c, j) => {
              const id = c ? r.label + "|" + c.label : r.label;
              const cell = cells.get(id) || { count: 0, error_rate: null, error_share: 0 };
              const selected = ctx.active.source !== "all" && filterKey(cellFilter(r, c)) === activeKey;
              // The visible text first (rate, rows), then where the cell is.
              const shown = (cell.count ? fmt(cell.error_rate) : "–") + " " + count(cell.count);
              const label = shown + " rows: " + axes[0].feature + " " + r.label + (c ? ", " + axes[1].feature + " " + c.label : "") + " (" + rateName + " " + fmt(cell.error_rate) + ")";
              return (
                <div
                  role="gridcell"
                  data-cell={id}
                  tabIndex={focus[0] === i && focus[1] === j ? 0 : -1}
                  aria-selected={selected ? "true" : "false"}
                  aria-label={label}
                  title={label}
                  class={"hm-cell" + (selected ? " selected" : "")}
                  style={{ background: errorColour(cell.count ? cell.error_rate : null, overall), color: textColour(cell.count ? cell.error_rate : null, overall) }}
                  ref={(el) => (refs.current[i + "," + j] = el)}
                  onClick={() => {
                    setFocus([i, j]);
                    select(r, c, cell);
                  }}
                  onKeyDown={(e) => onKey(e, i, j, r, c, cell)}
                >
                  <span class="hm-rate">{cell.count ? fmt(cell.error_rate) : "–"}</span>{" "}
                  <span class="hm-count">{count(cell.count)}</span>
                </div>
              );
            })}
          </div>
        ))}
      </div>
    </div>
  );
}

const NODE_METRICS = ["accuracy_score", "error_rate", "balanced_accuracy_score", "precision_score", "recall_score", "f1_score", "selection_rate", "false_positive_rate", "false_negative_rate"];

// The selected node or cell: its figures on all test rows (from the error analysis), and its
// label metrics from the node's confusion matrix where the bundle has it.
function Selected({ ea, rateName }) {
  const ctx = useContext(Ctx);
  const { active, doc, table } = ctx;
  const key = filterKey(active.filter);
  // Shown for every cohort (All data: the root), so selecting does not move the page.
  const node = active.node || (active.source === "all" ? ea.tree.nodes[0] : ea.tree.nodes.find((n) => n.filter && filterKey(n.filter) === key));
  const item = node || active.cell;
  if (!item) {
    return (
      <div class="selected-item" data-testid="error-selection">
        <h3>Selected: {active.name}</h3>
        <p class="muted">Not a node of the tree nor a cell of the heatmap: select one to see its figures on all test rows.</p>
      </div>
    );
  }
  const what = node ? (node.id === 0 ? "Selected: the root (all data)" : "Selected node " + node.id) : "Selected heatmap cell";
  let metrics = null;
  const cm = node && node.confusion_matrix;
  if (cm) {
    const p = doc.positive_label !== null && doc.positive_label !== undefined ? cm.labels.indexOf(doc.positive_label) : -1;
    const all = metricsFromCounts(cm.matrix, p >= 0 ? p : null);
    // (error_rate is in the figures above already.)
    metrics = NODE_METRICS.filter((m) => m in all && m !== "error_rate").map((m) => [m, all[m]]);
  }
  return (
    <div class="selected-item" data-testid="error-selection">
      <h3>{what}</h3>
      <p>
        <code>{filterText(active.filter)}</code>
      </p>
      <Table
        header={["Figure", "value"]}
        rows={[
          ["rows", item.count],
          ["errors" + (ea.error_metric === "error_rate" ? "" : " (sum of absolute errors)"), item.error_sum],
          [rateName, item.error_rate],
          ["share of all errors", item.error_share],
          ...(metrics || []),
        ]}
        testid="error-selection-figures"
      />
      <p class="scope muted">
        on all {count(ea.n_rows)} test rows (the error analysis{metrics ? "'s counts" : ""})
        {table.present ? "; the page's other views compute on its " + count(active.size) + " carried rows" : ""}
      </p>
    </div>
  );
}

export default function ErrorAnalysis() {
  const ctx = useContext(Ctx);
  const { doc } = ctx;
  const ea = doc.error_analysis;
  if (!ea) return <p class="muted">No error analysis in this bundle.</p>;
  const rateName = ea.error_metric === "error_rate" ? "error rate" : "mean absolute error";
  const errors = ea.cohort_errors;
  const nodes = ea.tree.nodes;
  const overall = errors.overall.error_rate;
  const mi = ea.feature_importance || [];
  const miSpec =
      mi.length
        ? {
            data: { values: mi.map((f) => ({ feature: f.feature, value: f.mutual_information })) },
            mark: "bar",
            width: 360,
            height: { step: 18 },
            encoding: {
              y: { field: "feature", type: "nominal", sort: "-x", title: null },
              x: { field: "value", type: "quantitative", title: "mutual information with the error" },
              tooltip: [{ field: "feature" }, { field: "value", format: ".4g" }],
            },
          }
        : null;
  const leaves = [...(errors.worst_leaves || []), ...(errors.best_leaves || [])];
  return (
    <section>
      <h2>Error analysis</h2>
      <p class="muted">
        Where the model is wrong: one tree fitted to the error over all {count(ea.n_rows)} test rows (figures of the nodes and
        cells: all {count(ea.n_rows)} test rows). Select a node or a heatmap cell to make its rows the active cohort of every
        view.{" "}
        {nodes.length === 1
          ? "The tree found no split: the error is alike everywhere it could look (or there are too few rows to split)."
          : "Arrow keys move between nodes, Enter selects, left and right close and open a node."}
      </p>
      <Legend overall={overall} rateName={rateName} />
      <ErrorTree ea={ea} rateName={rateName} />
      <Selected ea={ea} rateName={rateName} />
      {ea.heatmap ? (
        <>
          <h3>Heatmap: {rateName} by {ea.heatmap.axes.map((a) => a.feature).join(" × ")}</h3>
          <Heatmap ea={ea} rateName={rateName} />
        </>
      ) : null}
      <h3>Errors per cohort</h3>
      <Table
        header={["Rows", "count", rateName, "share of all errors"]}
        rows={[
          ["All data", errors.overall.count, errors.overall.error_rate, errors.overall.error_share],
          ...errors.cohorts.map((c) => [c.name, c.count, c.error_rate, c.error_share]),
          ...errors.sensitive_groups.map((g) => [g.feature + " = " + g.group, g.count, g.error_rate, g.error_share]),
        ]}
        countColumns={[1]}
        testid="cohort-errors"
      />
      {leaves.length ? (
        <p class="muted">
          Leaves with a higher {rateName} than all data ({fmt(overall)}) are in the cohort selector as worst leaves, those with
          a lower one as best leaves, with their figures on all test rows.
        </p>
      ) : null}
      {mi.length ? (
        <>
          <h3>Features related to the error</h3>
          <Chart spec={miSpec} label={"Mutual information of each feature with the error: " + mi.map((f) => f.feature + " " + fmt(f.mutual_information)).join(", ")} />
        </>
      ) : null}
    </section>
  );
}
