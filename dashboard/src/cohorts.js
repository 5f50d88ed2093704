// The page's cohorts: All data, the bundle's cohort views, and those added in the page.
import { filterMask, maskCount } from "./filters.js";

// A filter as canonical text (keys sorted), to find a cohort already made for a filter.
export function filterKey(filter) {
  const canon = (x) => {
    if (Array.isArray(x)) return x.map(canon);
    if (x && typeof x === "object") return Object.fromEntries(Object.keys(x).sort().map((k) => [k, canon(x[k])]));
    return x;
  };
  return JSON.stringify(canon(filter === undefined ? null : filter));
}

// A sensitive group's view carries no filter in older bundles: "sex = Female" read back as
// the feature's value (text matched against the carried categories, or a number).
export function groupFilter(view, doc, table) {
  if (view.filter) return view.filter;
  const features = (doc.data && doc.data.sensitive_features) || [];
  for (const f of features) {
    const prefix = f + " = ";
    if (!view.name.startsWith(prefix)) continue;
    const text = view.name.slice(prefix.length);
    if (text === "(missing)") return { column: f, op: "==", value: null };
    const meta = table.feature(f);
    if (meta && meta.categories) {
      const hit = meta.categories.find((c) => String(c) === text);
      return { column: f, op: "==", value: hit === undefined ? text : hit };
    }
    const number = Number(text);
    return { column: f, op: "==", value: text !== "" && !Number.isNaN(number) ? number : text };
  }
  return undefined; // unknown: no rows of the table are attributed to it
}

// A cohort record (see context.js): its mask over the carried rows.
export function makeCohort(table, { key, name, filter, source, view = null, node = null, cell = null }) {
  let mask;
  let known = true;
  if (!table.present) {
    // A page without carried rows: only the bundle's full-data figures.
    return { key, name, filter: filter === undefined ? null : filter, source, mask: new Uint8Array(0), size: 0, rowsKnown: false, view, node, cell };
  }
  try {
    mask = filter === undefined ? new Uint8Array(table.n) : filterMask(filter, table);
    known = filter !== undefined;
  } catch (err) {
    // A column the page does not carry: the cohort keeps its full-data figures only.
    console.warn("cohort " + name + ": " + err.message);
    mask = new Uint8Array(table.n);
    known = false;
  }
  return { key, name, filter: filter === undefined ? null : filter, source, mask, size: maskCount(mask), rowsKnown: known, view, node, cell };
}

export function bundleCohorts(doc, table) {
  const views = doc.cohort_views || [];
  const all = views.find((v) => v.kind === "all") || null;
  const out = [makeCohort(table, { key: "all", name: "All data", filter: null, source: "all", view: all })];
  for (const v of views) {
    if (v.kind === "all") continue;
    const filter = v.kind === "group" ? groupFilter(v, doc, table) : v.filter;
    out.push(makeCohort(table, { key: "view-" + v.id, name: v.name, filter, source: "bundle", view: v }));
  }
  return out;
}
