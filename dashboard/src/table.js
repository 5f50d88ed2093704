// DATA.table (a seeded sample of the test rows, columnar) decoded for the views.

const EMPTY = {
  n: 0, of: 0, seed: null, requested: null, sampled: false, row_id: [], y_true: [], y_pred: [], error: [],
  probability: null, features: [], local_importance: null, causal_effects: null,
};

const OUTCOMES = { "1,1": "True positive", "0,1": "False positive", "0,0": "True negative", "1,0": "False negative" };

const floats = (values) => Float64Array.from(values, (v) => (v === null || v === undefined ? NaN : v));

// `raw`: DATA.table (missing in pages rendered before it existed: an empty table, so the
// views still draw their full-data figures); `doc`: insights.json, for the task type.
export function decodeTable(raw, doc) {
  const t = raw && Array.isArray(raw.row_id) ? raw : EMPTY;
  const n = t.row_id.length;
  const classification = !doc || doc.task_type !== "regression";
  // core.cohorts' classification_outcome: the positive class is the second of the sorted
  // classes (doc.classes: the model's classes_, sorted), whatever positive_label says.
  const classes = doc && Array.isArray(doc.classes) ? doc.classes : null;
  const positive = classes && classes.length === 2 ? classes[1] : doc ? doc.positive_label : null;
  const features = t.features.map((f) => ({ name: f.name, kind: f.kind, categories: f.categories }));
  const byName = new Map(t.features.map((f) => [f.name, f]));
  const cache = new Map();

  const derived = {
    row_id: () => t.row_id.slice(),
    y_true: () => t.y_true,
    y_pred: () => t.y_pred,
    error: () => t.error,
    probability: () => (t.probability ? t.probability : new Array(n).fill(null)),
    correct: () => (classification ? t.error.map((e) => (e === null ? null : 1 - e)) : new Array(n).fill(null)),
    classification_outcome: () => {
      if (!classification || positive === null || positive === undefined) return new Array(n).fill(null);
      return t.y_true.map((y, i) => OUTCOMES[+(y === positive) + "," + +(t.y_pred[i] === positive)]);
    },
  };

  // The values of a column (null = missing): a feature or a special column.
  function column(name) {
    if (cache.has(name)) return cache.get(name);
    let values;
    const f = byName.get(name);
    if (f && f.kind === "categorical") {
      values = f.codes.map((c) => (c === null || c === undefined ? null : f.categories[c]));
    } else if (f) {
      values = f.values;
    } else if (derived[name]) {
      values = derived[name]();
    } else {
      throw new Error("no column " + name + " in the page's rows");
    }
    cache.set(name, values);
    return values;
  }

  // A categorical column as categories and codes (filters test each category once).
  function encoded(name) {
    const f = byName.get(name);
    return f && f.kind === "categorical" ? { categories: f.categories, codes: f.codes } : null;
  }

  const li = t.local_importance;
  const localImportance = li
    ? { label: li.label, features: Object.fromEntries(Object.entries(li.features).map(([k, v]) => [k, floats(v)])) }
    : null;
  const causalEffects = t.causal_effects
    ? Object.fromEntries(Object.entries(t.causal_effects).map(([k, v]) => [k, floats(v)]))
    : null;

  return {
    n,
    of: t.of,
    seed: t.seed,
    requested: t.requested,
    sampled: !!t.sampled,
    present: t !== EMPTY,
    classification,
    rowId: Int32Array.from(t.row_id),
    features,
    feature: (name) => features.find((f) => f.name === name) || null,
    hasColumn: (name) => byName.has(name) || name in derived,
    column,
    encoded,
    localImportance,
    causalEffects,
    // The position of a test row (row_id) in the table, or -1.
    indexOf(rowId) {
      let lo = 0;
      let hi = n - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        const v = t.row_id[mid];
        if (v === rowId) return mid;
        if (v < rowId) lo = mid + 1;
        else hi = mid - 1;
      }
      return -1;
    },
  };
}
