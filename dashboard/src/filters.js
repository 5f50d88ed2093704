// Cohort filters on the carried rows, with rai_audit.core.cohorts.filter_mask's semantics:
// a missing value (null) is selected only by `== null`, `!= x` and `not in [...]`.

// Booleans compare as 0/1 (a classifier's error column holds 0/1, filters say true/false).
const norm = (x) => (typeof x === "boolean" ? +x : x);
const same = (a, b) => {
  a = norm(a);
  b = norm(b);
  return a === b;
};

// The predicate of one condition on a present (non-missing) value.
function predicate(op, value) {
  switch (op) {
    case "==":
      return (v) => same(v, value);
    case "!=":
      return (v) => !same(v, value);
    case "<":
      return (v) => norm(v) < norm(value);
    case "<=":
      return (v) => norm(v) <= norm(value);
    case ">":
      return (v) => norm(v) > norm(value);
    case ">=":
      return (v) => norm(v) >= norm(value);
    case "in":
      return (v) => value.some((x) => same(v, x));
    case "not in":
      return (v) => !value.some((x) => same(v, x));
    case "between":
      return (v) => norm(v) >= norm(value[0]) && norm(v) <= norm(value[1]);
    default:
      throw new Error("unknown operator " + op);
  }
}

// Whether a missing value is selected: only by != (a missing value differs from any value)
// and not in (it is in no list); == null and != null are handled before.
const missingSelected = (op) => op === "!=" || op === "not in";

function leafMask(node, table) {
  const n = table.n;
  const out = new Uint8Array(n);
  const { column, op } = node;
  const value = node.value === undefined ? null : node.value;
  if (value === null) {
    const values = table.column(column);
    const want = op === "==";
    for (let i = 0; i < n; i++) out[i] = (values[i] === null) === want ? 1 : 0;
    return out;
  }
  const test = predicate(op, value);
  const missing = missingSelected(op) ? 1 : 0;
  const encoded = table.encoded ? table.encoded(column) : null;
  if (encoded) {
    // A categorical column: the test once per category, then a lookup per row.
    const hit = Uint8Array.from(encoded.categories, (c) => (test(c) ? 1 : 0));
    const codes = encoded.codes;
    for (let i = 0; i < n; i++) {
      const c = codes[i];
      out[i] = c === null || c === undefined ? missing : hit[c];
    }
    return out;
  }
  const values = table.column(column);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    out[i] = v === null || v === undefined || (typeof v === "number" && Number.isNaN(v)) ? missing : test(v) ? 1 : 0;
  }
  return out;
}

// The rows (1 = selected) of `table` that `filter` selects; no filter selects every row.
export function filterMask(filter, table) {
  const n = table.n;
  if (!filter) return new Uint8Array(n).fill(1);
  if (filter.and || filter.or) {
    const isAnd = !!filter.and;
    const parts = filter.and || filter.or;
    const out = new Uint8Array(n).fill(isAnd ? 1 : 0); // as numpy's reduce of no arrays
    for (const child of parts) {
      const m = filterMask(child, table);
      if (isAnd) for (let i = 0; i < n; i++) out[i] &= m[i];
      else for (let i = 0; i < n; i++) out[i] |= m[i];
    }
    return out;
  }
  return leafMask(filter, table);
}

// The number of selected rows of a mask.
export function maskCount(mask) {
  let s = 0;
  for (let i = 0; i < mask.length; i++) s += mask[i];
  return s;
}

// The positions of the selected rows.
export function maskIndex(mask) {
  const out = [];
  for (let i = 0; i < mask.length; i++) if (mask[i]) out.push(i);
  return out;
}

// The columns a filter uses (for checking an imported filter against the table).
export function filterColumns(filter, out = new Set()) {
  if (!filter) return out;
  for (const key of ["and", "or"]) if (filter[key]) filter[key].forEach((f) => filterColumns(f, out));
  if (filter.column !== undefined) out.add(filter.column);
  return out;
}
