import { useContext, useMemo, useState } from "preact/hooks";
import { Ctx } from "../context.js";
import { count, filterText } from "../format.js";
import { filterMask, maskCount } from "../filters.js";
import { Table } from "../ui.jsx";
import { filterKey } from "../cohorts.js";

const ORDER_OPS = ["<", "<=", ">", ">="];
const OP_LABELS = {
  "==": "equals (==)", "!=": "differs from (!=)", "<": "<", "<=": "<=", ">": ">", ">=": ">=",
  in: "in (list)", "not in": "not in (list)", between: "between (inclusive)", missing: "is missing", "not missing": "is not missing",
};

// The editable columns: features, then the true value, the prediction and the error, each
// with what values it takes ("numeric", "categorical" with its values, "boolean").
function editorColumns(doc, table) {
  const classification = doc.task_type !== "regression";
  const labels = doc.classes || [];
  const out = table.features.map((f) => ({ name: f.name, kind: f.kind === "categorical" ? "categorical" : f.kind === "datetime" ? "datetime" : "numeric", values: f.categories || null }));
  const target = classification ? { kind: "categorical", values: labels } : { kind: "numeric", values: null };
  out.push({ name: "y_true", ...target }, { name: "y_pred", ...target });
  out.push(classification ? { name: "error", kind: "boolean", values: [true, false] } : { name: "error", kind: "numeric", values: null });
  return out;
}

function opsFor(col) {
  if (!col) return [];
  const base = ["==", "!="];
  if (col.kind === "numeric") return [...base, ...ORDER_OPS, "between", "in", "not in", "missing", "not missing"];
  if (col.kind === "boolean") return base;
  return [...base, "in", "not in", "missing", "not missing"];
}

// One value typed as the column holds it: a number, a category's own value, true/false.
function parseOne(text, col) {
  const t = text.trim();
  if (t === "") throw new Error("a value is missing");
  if (col.kind === "numeric") {
    const v = Number(t);
    if (Number.isNaN(v)) throw new Error(JSON.stringify(t) + " is not a number");
    return v;
  }
  if (col.kind === "boolean") {
    if (["true", "1", "yes"].includes(t.toLowerCase())) return true;
    if (["false", "0", "no"].includes(t.toLowerCase())) return false;
    throw new Error(col.name + " is true or false");
  }
  if (col.values) {
    const hit = col.values.find((c) => String(c) === t);
    if (hit !== undefined) return hit;
    if (col.values.length && col.values.every((c) => typeof c === "number") && !Number.isNaN(Number(t))) return Number(t);
  }
  return t;
}

// A list: comma-separated, or a JSON list (for values that hold commas).
function parseList(text, col) {
  const t = text.trim();
  if (t.startsWith("[")) {
    let parsed;
    try {
      parsed = JSON.parse(t);
    } catch {
      throw new Error("not a JSON list: " + t);
    }
    if (!Array.isArray(parsed)) throw new Error("not a list: " + t);
    return parsed.map((v) => parseOne(String(v), col));
  }
  return t.split(",").map((part) => parseOne(part, col));
}

// One condition as a filter leaf (core.cohorts' format), or an error message.
export function conditionFilter(cond, columns) {
  const col = columns.find((c) => c.name === cond.column);
  if (!col) throw new Error("choose a column");
  if (cond.op === "missing") return { column: col.name, op: "==", value: null };
  if (cond.op === "not missing") return { column: col.name, op: "!=", value: null };
  if (cond.op === "in" || cond.op === "not in") return { column: col.name, op: cond.op, value: parseList(cond.value, col) };
  if (cond.op === "between") {
    const v = parseList(cond.value, col);
    if (v.length !== 2) throw new Error("between needs two numbers: low, high");
    if (v[0] > v[1]) throw new Error("between needs low <= high");
    return { column: col.name, op: "between", value: v };
  }
  return { column: col.name, op: cond.op, value: parseOne(cond.value, col) };
}

// OR-groups of AND-conditions as one filter: a single condition or group stays unwrapped.
export function groupsFilter(groups, columns) {
  const ands = groups.filter((g) => g.length).map((g) => {
    const leaves = g.map((c) => conditionFilter(c, columns));
    return leaves.length === 1 ? leaves[0] : { and: leaves };
  });
  if (!ands.length) throw new Error("add a condition");
  return ands.length === 1 ? ands[0] : { or: ands };
}

// A leaf's value as the editor's text: lists comma-separated (as JSON when a value holds a comma).
function valueInput(value) {
  if (!Array.isArray(value)) return String(value);
  return value.some((v) => String(v).includes(",")) ? JSON.stringify(value) : value.map(String).join(", ");
}

function leafCondition(leaf) {
  if (leaf.value === null || leaf.value === undefined) return { column: leaf.column, op: leaf.op === "==" ? "missing" : "not missing", value: "" };
  return { column: leaf.column, op: leaf.op, value: valueInput(leaf.value) };
}

// A filter as OR-groups of AND-conditions, when it has that form (a tree node's path, a
// heatmap cell, most cohort files); null otherwise.
export function filterGroups(filter) {
  if (!filter) return null;
  const isLeaf = (f) => f && f.column !== undefined;
  const andGroup = (f) => (isLeaf(f) ? [leafCondition(f)] : f.and && f.and.every(isLeaf) ? f.and.map(leafCondition) : null);
  if (filter.or) {
    const groups = filter.or.map(andGroup);
    return groups.every(Boolean) ? groups : null;
  }
  if (filter.and && !filter.and.every(isLeaf)) {
    // and of ors is not of the editor's form; and of a nested and is flattened
    const flat = [];
    for (const f of filter.and) {
      if (isLeaf(f)) flat.push(leafCondition(f));
      else if (f.and && f.and.every(isLeaf)) flat.push(...f.and.map(leafCondition));
      else return null;
    }
    return [flat];
  }
  const g = andGroup(filter);
  return g ? [g] : null;
}

const newCondition = (columns) => ({ column: columns[0] ? columns[0].name : "", op: "==", value: "" });

function Condition({ cond, columns, onChange, onRemove, id }) {
  const col = columns.find((c) => c.name === cond.column);
  const ops = opsFor(col);
  const needsValue = cond.op !== "missing" && cond.op !== "not missing";
  const listId = "values-" + id;
  const hint = cond.op === "between" ? "low, high" : cond.op === "in" || cond.op === "not in" ? "a, b, c" : "value";
  return (
    <div class="condition" role="group" aria-label="condition">
      <select
        name="column"
        aria-label="column"
        onChange={(e) => {
          const next = columns.find((c) => c.name === e.currentTarget.value);
          onChange({ ...cond, column: next.name, op: opsFor(next).includes(cond.op) ? cond.op : "==" });
        }}
      >
        {columns.map((c) => (
          <option value={c.name} selected={c.name === cond.column}>
            {c.name}
          </option>
        ))}
      </select>
      <select name="op" aria-label="operator" onChange={(e) => onChange({ ...cond, op: e.currentTarget.value })}>
        {ops.map((o) => (
          <option value={o} selected={o === cond.op}>
            {OP_LABELS[o]}
          </option>
        ))}
      </select>
      {needsValue ? (
        <>
          <input
            name="value"
            type="text"
            aria-label={"value (" + hint + ")"}
            placeholder={hint}
            value={cond.value}
            list={col && col.values ? listId : undefined}
            onInput={(e) => onChange({ ...cond, value: e.currentTarget.value })}
          />
          {col && col.values ? (
            <datalist id={listId}>
              {col.values.map((v) => (
                <option value={String(v)} />
              ))}
            </datalist>
          ) : null}
        </>
      ) : null}
      <button type="button" class="remove" aria-label="remove this condition" onClick={onRemove}>
        ✕
      </button>
    </div>
  );
}

// Cohort names are unique in a cohort file.
function uniqueName(name, others) {
  let out = name;
  for (let i = 2; others.some((c) => c.name === out); i++) out = name + " (" + i + ")";
  return out;
}

// One cohort a line: short enough to read, the file core.cohorts.load_cohorts reads.
function exportText(cohorts) {
  const lines = cohorts.map((c) => "  " + JSON.stringify({ name: c.name, filter: c.filter }));
  return lines.length ? '{"cohorts": [\n' + lines.join(",\n") + "\n]}\n" : '{"cohorts": []}\n';
}

export default function CohortEditor() {
  const ctx = useContext(Ctx);
  const { doc, table, cohorts } = ctx;
  const columns = useMemo(() => editorColumns(doc, table), [doc, table]);
  const [groups, setGroups] = useState(() => [[newCondition(columns)]]);
  const [name, setName] = useState("");
  const [copied, setCopied] = useState("");

  let filter = null;
  let problem = null;
  try {
    filter = groupsFilter(groups, columns);
  } catch (err) {
    problem = err.message;
  }
  let size = null;
  if (filter) {
    try {
      size = maskCount(filterMask(filter, table));
    } catch (err) {
      problem = err.message;
    }
  }
  const draftName = name.trim() || "Cohort " + (cohorts.filter((c) => c.source === "editor").length + 1);
  const saved = cohorts.filter((c) => c.source === "editor");
  // The cohort being built is exported too, unless saved already (same filter).
  const draftSaved = filter && saved.some((c) => filterKey(c.filter) === filterKey(filter));
  const exported = [...saved, ...(filter && !problem && !draftSaved ? [{ name: uniqueName(draftName, saved), filter }] : [])];
  const json = exportText(exported);
  const href = "data:application/json;charset=utf-8," + encodeURIComponent(json);

  const fromActive = filterGroups(ctx.active.filter);
  const known = (groups) => groups.every((g) => g.every((c) => columns.some((col) => col.name === c.column)));
  const startFromActive = () => {
    setGroups(fromActive);
    setName(ctx.active.name + " (edited)");
  };
  const update = (gi, ci, cond) => setGroups(groups.map((g, i) => (i !== gi ? g : g.map((c, j) => (j === ci ? cond : c)))));
  const remove = (gi, ci) => setGroups(groups.map((g, i) => (i !== gi ? g : g.filter((_, j) => j !== ci))).filter((g) => g.length));
  const save = () => {
    if (!filter) return;
    const key = ctx.addCohort({ name: uniqueName(draftName, saved), filter, source: "editor" });
    ctx.setActive(key);
    setName("");
  };
  const copy = () => {
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(json).then(
        () => setCopied("copied"),
        () => setCopied("the browser refused: select the text and copy it"),
      );
    } else setCopied("no clipboard here: select the text and copy it");
  };

  return (
    <section data-testid="cohort-editor">
      <h2>Cohorts</h2>
      <p class="muted">
        Build a cohort from conditions over the features, the true value (y_true), the prediction (y_pred) and the error:
        the conditions of a group must all hold (and), a row is in the cohort when any group holds (or). Saved, it becomes
        the active cohort of every view, computed on the rows this page carries; export it as a cohort file for the next run
        to compute it on all test rows.
      </p>
      {fromActive && known(fromActive) ? (
        <p>
          <button type="button" data-testid="edit-active" onClick={startFromActive}>
            Start from the active cohort
          </button>{" "}
          <span class="muted">({ctx.active.name}: {filterText(ctx.active.filter)})</span>
        </p>
      ) : null}
      <div class="groups">
        {groups.map((g, gi) => (
          <fieldset class="or-group">
            <legend>{gi === 0 ? "Rows where all of" : "or where all of"}</legend>
            {g.map((cond, ci) => (
              <Condition id={gi + "-" + ci} cond={cond} columns={columns} onChange={(c) => update(gi, ci, c)} onRemove={() => remove(gi, ci)} />
            ))}
            <button type="button" data-testid="add-condition" onClick={() => setGroups(groups.map((x, i) => (i === gi ? [...x, newCondition(columns)] : x)))}>
              + and a condition
            </button>
          </fieldset>
        ))}
        <button type="button" data-testid="add-group" onClick={() => setGroups([...groups, [newCondition(columns)]])}>
          + or a group of conditions
        </button>
      </div>
      <p class="filter-text">
        Filter: <code>{filter ? filterText(filter) : "–"}</code>
      </p>
      <p data-testid="editor-count" aria-live="polite">
        {!table.present
          ? "this page carries no rows: the next run computes the cohort on all test rows"
          : problem === "a value is missing"
            ? "enter a value"
            : problem
              ? problem
              : count(size) + " of the " + count(table.n) + " carried rows"}
      </p>
      <p class="scope muted">{table.sampled ? "The page carries a sample of " + count(table.n) + " of the " + count(table.of) + " test rows." : "The page carries all " + count(table.of) + " test rows."}</p>
      <div class="save">
        <label>
          Name <input name="cohort-name" type="text" value={name} placeholder={draftName} onInput={(e) => setName(e.currentTarget.value)} />
        </label>{" "}
        <button type="button" data-testid="save-cohort" disabled={!filter || !!problem} onClick={save}>
          Save and show
        </button>
      </div>
      <h3>Cohort file</h3>
      <p class="muted">The cohorts saved here (and the one being built), in the format of the cohort file a run reads (--cohorts).</p>
      <textarea data-testid="cohort-json" readOnly rows={Math.min(16, json.split("\n").length)} aria-label="cohort file JSON" value={json} />
      <div class="export">
        <button type="button" data-testid="copy-cohort" onClick={copy}>
          Copy
        </button>{" "}
        <a data-testid="download-cohort" download="cohorts.json" href={href}>
          Download cohorts.json
        </a>{" "}
        <span class="muted" aria-live="polite">
          {copied}
        </span>
      </div>
      <h3>Every cohort of the page</h3>
      <Table
        header={["Cohort", "from", "rows (all test rows)", "carried rows", "filter"]}
        rows={cohorts.map((c) => [
          c.name,
          c.source === "bundle" ? (c.view ? c.view.kind.replace("_", " ") : "bundle") : c.source,
          c.view ? c.view.count : c.node ? c.node.count : c.cell ? c.cell.count : "not known",
          c.rowsKnown === false ? "not known" : c.size,
          c.filter || c.source === "all" ? filterText(c.filter) : "a group of a sensitive feature",
        ])}
        countColumns={[2, 3]}
        testid="cohort-list"
      />
      <p class="muted">Machine-readable results: insights.json and tables/*.parquet beside this page.</p>
    </section>
  );
}
