// Behaviour of the page's modules that needs no Python to check.
import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeTable } from "../src/table.js";
import { filterMask, maskCount } from "../src/filters.js";
import { filterKey } from "../src/cohorts.js";
import { thresholded } from "../src/metrics.js";

const doc = { task_type: "binary_classification", positive_label: "yes", classes: ["no", "yes"] };
const raw = {
  n: 4, of: 10, seed: 0, requested: 4, sampled: true,
  row_id: [1, 4, 6, 9],
  y_true: ["yes", "no", "yes", "no"],
  y_pred: ["yes", "yes", "no", "no"],
  error: [0, 1, 1, 0],
  probability: [0.9, 0.6, 0.2, 0.1],
  features: [
    { name: "age", kind: "numeric", values: [20, null, 40, 50] },
    { name: "sex", kind: "categorical", categories: ["F", "M"], codes: [0, 1, null, 0] },
  ],
  local_importance: null,
  causal_effects: null,
};

test("a page without DATA.table has an empty table", () => {
  const t = decodeTable(undefined, doc);
  assert.equal(t.n, 0);
  assert.equal(t.present, false);
  assert.equal(maskCount(filterMask({ column: "y_true", op: "==", value: "yes" }, t)), 0);
});

test("special columns of the carried rows", () => {
  const t = decodeTable(raw, doc);
  assert.deepEqual(t.column("correct"), [1, 0, 0, 1]);
  assert.deepEqual(t.column("classification_outcome"), ["True positive", "False positive", "False negative", "True negative"]);
  assert.deepEqual(t.column("sex"), ["F", "M", null, "F"]);
  assert.equal(t.indexOf(6), 2);
  assert.equal(t.indexOf(5), -1);
  // row_id is the test row's position, not the position in the page's sample
  assert.deepEqual(Array.from(filterMask({ column: "row_id", op: ">=", value: 6 }, t)), [0, 0, 1, 1]);
});

test("missing values: only == null, != and not in select them", () => {
  const t = decodeTable(raw, doc);
  const m = (f) => Array.from(filterMask(f, t));
  assert.deepEqual(m({ column: "age", op: "==", value: null }), [0, 1, 0, 0]);
  assert.deepEqual(m({ column: "age", op: "!=", value: null }), [1, 0, 1, 1]);
  assert.deepEqual(m({ column: "age", op: "!=", value: 20 }), [0, 1, 1, 1]);
  assert.deepEqual(m({ column: "sex", op: "not in", value: ["M"] }), [1, 0, 1, 1]);
  assert.deepEqual(m({ column: "sex", op: "in", value: ["M", "F"] }), [1, 1, 0, 1]);
  assert.deepEqual(m({ column: "age", op: "between", value: [20, 40] }), [1, 0, 1, 0]);
  assert.deepEqual(m({ column: "error", op: "==", value: true }), [0, 1, 1, 0]);
  assert.deepEqual(m({ or: [{ column: "age", op: "<", value: 30 }, { and: [{ column: "sex", op: "==", value: "F" }, { column: "age", op: ">", value: 45 }] }] }), [1, 0, 0, 1]);
});

test("a filter's key does not depend on the order of its keys", () => {
  assert.equal(filterKey({ column: "a", op: "==", value: 1 }), filterKey({ value: 1, op: "==", column: "a" }));
  assert.notEqual(filterKey({ column: "a", op: "==", value: 1 }), filterKey({ column: "a", op: "==", value: 2 }));
});

test("thresholded: positive from the threshold up, none without a probability", () => {
  assert.deepEqual(thresholded([0.2, 0.5, 0.7, null], 0.5), [0, 1, 1, null]);
});
