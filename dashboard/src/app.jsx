import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import { Ctx } from "./context.js";
import { decodeTable } from "./table.js";
import { bundleCohorts, filterKey, makeCohort } from "./cohorts.js";
import { chartsDrawn } from "./chart.jsx";
import { count, filterText } from "./format.js";
import Overview from "./views/Overview.jsx";
import ErrorAnalysis from "./views/ErrorAnalysis.jsx";
import CohortEditor from "./views/CohortEditor.jsx";
import DataExplorer from "./views/DataExplorer.jsx";
import Importance from "./views/Importance.jsx";
import Counterfactuals from "./views/Counterfactuals.jsx";
import Causal from "./views/Causal.jsx";
import Fairness from "./views/Fairness.jsx";
import DataAnalysis from "./views/DataAnalysis.jsx";
import WhatIf from "./views/WhatIf.jsx";
import LiveCohort from "./views/LiveCohort.jsx";

// The tabs, in order; `shown` leaves out views of insights the bundle does not have.
const TABS = [
  { id: "overview", title: "Model overview", View: Overview },
  { id: "error-analysis", title: "Error analysis", View: ErrorAnalysis, shown: (doc) => !!doc.error_analysis },
  { id: "cohorts", title: "Cohorts", View: CohortEditor },
  { id: "explorer", title: "Data explorer", View: DataExplorer },
  { id: "importance", title: "Feature importance", View: Importance, shown: (doc) => !!doc.explanation },
  { id: "counterfactuals", title: "Counterfactuals", View: Counterfactuals, shown: (doc) => !!doc.counterfactual },
  { id: "causal", title: "Causal", View: Causal, shown: (doc) => !!doc.causal },
  { id: "fairness", title: "Fairness", View: Fairness, shown: (doc) => !!(doc.fairness && doc.fairness.length) },
  { id: "data", title: "Data analysis", View: DataAnalysis },
  { id: "what-if", title: "What-if", View: WhatIf },
];

const SOURCE_PREFIX = { all: "", bundle: "", tree: "", heatmap: "", editor: "edited: " };

const rows = (n) => count(n) + (n === 1 ? " row" : " rows");

function cohortLabel(c) {
  const kind = c.view ? ({ cohort: "cohort: ", group: "group: " }[c.view.kind] || "") : SOURCE_PREFIX[c.source] || "";
  const n = c.view ? c.view.count : c.node ? c.node.count : c.cell ? c.cell.count : null;
  return kind + c.name + (n !== null ? " (" + rows(n) + ")" : " (" + count(c.size) + " carried " + (c.size === 1 ? "row)" : "rows)"));
}

// The full-data row count of a cohort when the bundle has it.
export function fullCount(c) {
  if (c.view) return c.view.count;
  if (c.node) return c.node.count;
  if (c.cell) return c.cell.count;
  return null;
}

// A cohort's rows among the carried ones, when its full-data count is not known.
function carriedCount(c, table) {
  if (!table.present) return "not known (this page carries no rows)";
  if (!table.sampled) return rows(c.size) + " (all test rows carried)";
  return count(c.size) + " of the " + count(table.n) + " sampled rows (of " + count(table.of) + " test rows)";
}

function Tabs({ tabs, current, onSelect }) {
  const refs = useRef({});
  const onKey = (e) => {
    const i = tabs.findIndex((t) => t.id === current);
    let j = null;
    if (e.key === "ArrowRight") j = (i + 1) % tabs.length;
    else if (e.key === "ArrowLeft") j = (i - 1 + tabs.length) % tabs.length;
    else if (e.key === "Home") j = 0;
    else if (e.key === "End") j = tabs.length - 1;
    if (j === null) return;
    e.preventDefault();
    onSelect(tabs[j].id);
    const el = refs.current[tabs[j].id];
    if (el) el.focus();
  };
  return (
    <div role="tablist" aria-label="Views" class="tabs" onKeyDown={onKey}>
      {tabs.map((t) => (
        <button
          type="button"
          role="tab"
          id={"tab-" + t.id}
          aria-selected={t.id === current ? "true" : "false"}
          aria-controls={"panel-" + t.id}
          tabIndex={t.id === current ? 0 : -1}
          ref={(el) => (refs.current[t.id] = el)}
          onClick={() => onSelect(t.id)}
        >
          {t.title}
        </button>
      ))}
    </div>
  );
}

function Header({ ctx }) {
  const { doc, table, cohorts, active, compared, setActive, setCompared } = ctx;
  const full = fullCount(active);
  const task = (doc.task_type || "").replace(/_/g, " ");
  return (
    <header class="page-header">
      <h1>
        Responsible AI dashboard: {doc.target_column} ({task})
      </h1>
      <div class="selectors">
        <label>
          Cohort{" "}
          <select id="cohort" value={active.key} onChange={(e) => setActive(e.currentTarget.value)}>
            {cohorts.map((c) => (
              <option value={c.key} selected={c.key === active.key}>
                {cohortLabel(c)}
              </option>
            ))}
          </select>
        </label>
        <label>
          Compare with{" "}
          <select
            id="compare"
            multiple
            size={Math.min(4, cohorts.length)}
            onChange={(e) => setCompared([...e.currentTarget.selectedOptions].map((o) => o.value))}
          >
            {cohorts.map((c) => (
              <option value={c.key} selected={compared.some((x) => x.key === c.key && x.key !== active.key)}>
                {cohortLabel(c)}
              </option>
            ))}
          </select>
        </label>
      </div>
      <dl class="active-cohort" aria-live="polite">
        <div>
          <dt>Active cohort</dt>
          <dd data-testid="active-cohort">{active.name}</dd>
        </div>
        <div>
          <dt>Filter</dt>
          <dd data-testid="active-filter">{active.filter || active.source === "all" ? filterText(active.filter) : "a group of a sensitive feature"}</dd>
        </div>
        <div>
          <dt>Rows</dt>
          <dd data-testid="active-count">
            {full !== null ? count(full) + (full === 1 ? " test row" : " test rows") : carriedCount(active, table)}
          </dd>
        </div>
      </dl>
    </header>
  );
}

export function App({ data }) {
  const doc = data.doc;
  const table = useMemo(() => decodeTable(data.table, doc), [data]);
  const base = useMemo(() => bundleCohorts(doc, table), [table]);
  const [added, setAdded] = useState([]);
  const addedRef = useRef([]);
  const [activeKey, setActiveKey] = useState("all");
  const [comparedKeys, setComparedKeys] = useState([]);
  const [rowId, setRowId] = useState(null);
  const tabs = useMemo(() => TABS.filter((t) => !t.shown || t.shown(doc)), [doc]);
  const [tab, setTab] = useState(tabs[0].id);

  const cohorts = useMemo(() => [...base, ...added], [base, added]);
  const byKey = (key) => cohorts.find((c) => c.key === key);
  const active = byKey(activeKey) || cohorts[0];
  const compared = [active, ...comparedKeys.filter((k) => k !== active.key).map(byKey).filter(Boolean)];

  // A cohort made in the page; the same filter again gives the cohort already made (a
  // bundle cohort of that filter keeps its full-data figures).
  const addCohort = useCallback(
    ({ name, filter, source, node = null, cell = null }) => {
      const key = filterKey(filter);
      const same = (c) => filterKey(c.filter) === key && c.source !== "all" && (c.filter !== null || filter === null);
      if (filter === null || filter === undefined) return "all";
      const existing = base.find(same) || addedRef.current.find(same);
      if (existing && (existing.source === "bundle" || existing.source === source)) return existing.key;
      const k = source + "-" + (addedRef.current.length + 1);
      const cohort = makeCohort(table, { key: k, name, filter, source, node, cell });
      addedRef.current = [...addedRef.current, cohort];
      setAdded(addedRef.current);
      return k;
    },
    [base, table],
  );

  const scope = useCallback(
    (c) => {
      if (!table.present) return "no rows carried in this page";
      const all = !c || c.source === "all";
      if (!table.sampled) return all ? "on all " + count(table.of) + " test rows" : "on all " + count(c.size) + " test rows of this cohort";
      return all
        ? "on the " + count(table.n) + " sampled rows of " + count(table.of)
        : "on the " + count(c.size) + " sampled rows of this cohort (a sample of " + count(table.n) + " of the " + count(table.of) + " test rows)";
    },
    [table],
  );

  const ctx = {
    data,
    doc,
    table,
    cohorts,
    active,
    compared,
    setActive: (key) => setActiveKey(key),
    setCompared: (keys) => setComparedKeys(keys),
    addCohort,
    rowId,
    setRowId,
    scope,
    setTab,
  };

  // Ready once the first view (and its charts) is drawn: the load-time benchmark waits for it.
  useEffect(() => {
    chartsDrawn().then(() => {
      document.body.dataset.ready = "1";
    });
  }, []);

  return (
    <Ctx.Provider value={ctx}>
      <Header ctx={ctx} />
      <nav aria-label="Views" class="tabs-bar">
        <Tabs tabs={tabs} current={tab} onSelect={setTab} />
      </nav>
      <main>
        <LiveCohort />
        {tabs.map((t) => (
          <div role="tabpanel" id={"panel-" + t.id} aria-labelledby={"tab-" + t.id} hidden={t.id !== tab} tabIndex={0}>
            {t.id === tab ? <t.View /> : null}
          </div>
        ))}
      </main>
    </Ctx.Provider>
  );
}
