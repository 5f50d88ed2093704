// Numbers and filters as text, as insights.json and the PDF show them.

// Python's "%.<p>g" (round half to even on exact ties, as Python does): 4 digits for
// figures, 6 in filters.
export function formatG(v, p) {
  if (v === 0) return "0";
  if (!isFinite(v)) return String(v);
  let exp = Math.floor(Math.log10(Math.abs(v)));
  const scaled = Math.abs(v) * Math.pow(10, p - 1 - exp);
  if (scaled - Math.floor(scaled) === 0.5 && Math.floor(scaled) % 2 === 0) {
    v = (Math.sign(v) * Math.floor(scaled)) / Math.pow(10, p - 1 - exp);
  }
  const e = v.toExponential(p - 1);
  exp = parseInt(e.split("e")[1], 10);
  const trim = (m) => (m.includes(".") ? m.replace(/0+$/, "").replace(/\.$/, "") : m);
  if (exp < -4 || exp >= p) {
    const [m, x] = e.split("e");
    const n = Math.abs(parseInt(x, 10));
    return trim(m) + "e" + (x.startsWith("-") ? "-" : "+") + (n < 10 ? "0" + n : String(n));
  }
  return trim(v.toFixed(Math.max(0, p - 1 - exp)));
}

// A figure: n/a for a missing one, whole numbers as they are, others "%.4g".
export function fmt(v) {
  if (v === null || v === undefined) return "n/a";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v !== "number") return String(v);
  if (Number.isNaN(v)) return "n/a";
  // Whole numbers as they are (JSON does not tell 3.0 from 3), up to 1e15 (2.5e+20 stays short).
  if ((Number.isInteger(v) && Math.abs(v) < 1e15) || !isFinite(v)) return String(v);
  // As the PDF (report/dashboard.py's _fmt): 4 significant digits, from 1,000 on with separators
  // (12,280 rather than 1.228e+04, and 9,259 as 11,940 beside it).
  const text = formatG(v, 4);
  const rounded = Number(text);
  return Math.abs(rounded) >= 1e3 && Math.abs(rounded) < 1e15 ? count(rounded) : text;
}

// A signed figure ("+0.012"), for effects and differences.
export function fmtSigned(v) {
  if (typeof v !== "number" || Number.isNaN(v)) return fmt(v);
  const text = fmt(v);
  return v > 0 ? "+" + text : text;
}

// What a causal effect record is an effect of, as report/dashboard.py's effect_unit: a level
// against the control; for a numeric treatment, per 1 unit of it, or "2 vs 1" where the data
// hold only two values one unit apart (an integer-coded attribute). treatments: the causal
// result's (a bundle from before their values lacks them).
export function effectUnit(e, treatments) {
  if (e.level !== null && e.level !== undefined) return e.level + " vs " + e.control;
  const t = (treatments || []).find((x) => x.feature === e.treatment);
  const v = t && t.values;
  if (v && v[1] - v[0] === 1) return fmt(v[1]) + " vs " + fmt(v[0]);
  return "per 1 unit of " + e.treatment + (v ? " (" + e.treatment + " takes only " + fmt(v[0]) + " and " + fmt(v[1]) + ")" : "");
}

// A row count with thousands separators: 16,281.
export function count(n) {
  if (n === null || n === undefined) return "n/a";
  const s = String(Math.round(n));
  const neg = s.startsWith("-");
  const digits = neg ? s.slice(1) : s;
  return (neg ? "-" : "") + digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

// A percentage with at most one decimal: 12.7%.
export function pct(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "n/a";
  return formatG(v * 100, 3) + "%";
}

// A filter value: numbers to 6 significant digits (tree thresholds carry float noise such
// as 1162.0000000000002), text quoted, lists bracketed.
export function valueText(x) {
  if (Array.isArray(x)) return "[" + x.map(valueText).join(", ") + "]";
  if (typeof x === "number" && !Number.isInteger(x)) return formatG(x, 6);
  return JSON.stringify(x);
}

// A cohort filter as people read it, e.g. `age < 30 and (sex == "Female" or ...)`.
export function filterText(node) {
  if (!node) return "all rows";
  for (const key of ["and", "or"]) {
    if (node[key]) {
      return node[key].map((n) => (n.and || n.or ? "(" + filterText(n) + ")" : filterText(n))).join(" " + key + " ");
    }
  }
  if (node.value === null || node.value === undefined) {
    return node.column + (node.op === "==" ? " is missing" : " is not missing");
  }
  return node.column + " " + node.op + " " + valueText(node.value);
}
