// The page's filters, metrics and formats against values Python computed
// (rai_audit.core.cohorts.filter_mask, scikit-learn, Python's "%g"): the cases file is written
// by tests/report/test_dashboard_build.py, which runs `node --test` with
// RAI_DASHBOARD_CASES=<file>. Without it these tests are skipped.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { decodeTable } from "../src/table.js";
import { filterMask } from "../src/filters.js";
import { classificationMetrics, regressionMetrics, thresholdMetrics } from "../src/metrics.js";
import { count, effectUnit, filterText, fmt, fmtSigned, formatG } from "../src/format.js";

const file = process.env.RAI_DASHBOARD_CASES;
const cases = file ? JSON.parse(readFileSync(file, "utf8")) : null;
const skip = cases ? false : "RAI_DASHBOARD_CASES not set (run through pytest)";

function close(actual, expected, where) {
  if (expected === null) return assert.equal(actual, null, where + ": expected undefined (null), got " + actual);
  assert.notEqual(actual, null, where + ": got null, expected " + expected);
  const tol = 1e-12 * Math.max(1, Math.abs(expected));
  assert.ok(Math.abs(actual - expected) <= tol, where + ": " + actual + " != " + expected);
}

test("filterMask selects the rows core.cohorts.filter_mask selects", { skip }, () => {
  for (const tc of cases.filters) {
    const table = decodeTable(tc.table, tc.doc);
    for (const { filter, mask } of tc.cases) {
      const got = Array.from(filterMask(filter, table));
      assert.deepEqual(got, mask, tc.name + ": " + JSON.stringify(filter));
    }
  }
});

test("classification and regression metrics equal scikit-learn's", { skip }, () => {
  for (const tc of cases.metrics) {
    const got =
      tc.kind === "regression"
        ? regressionMetrics(tc.y_true, tc.y_pred)
        : classificationMetrics(tc.y_true, tc.y_pred, { labels: tc.labels, positive: tc.positive, probability: tc.probability });
    for (const [name, value] of Object.entries(tc.expected)) {
      if (name === "confusion_matrix") assert.deepEqual(got.confusion_matrix, value, tc.name + ": confusion matrix");
      else close(got[name], value, tc.name + ": " + name);
    }
  }
});

test("metrics at a threshold equal scikit-learn's on P(positive) >= threshold", { skip }, () => {
  for (const tc of cases.thresholds) {
    const got = thresholdMetrics(tc.y_true, tc.probability, tc.positive, tc.threshold);
    for (const [name, value] of Object.entries(tc.expected)) close(got[name], value, "threshold " + tc.threshold + ": " + name);
  }
});

test("numbers and filters read as Python writes them", { skip }, () => {
  for (const [v, text] of cases.format.fmt) assert.equal(fmt(v), text, "fmt(" + v + ")");
  for (const [v, text] of cases.format.fmt_signed) assert.equal(fmtSigned(v), text, "fmtSigned(" + v + ")");
  for (const [v, p, text] of cases.format.g) assert.equal(formatG(v, p), text, "%." + p + "g of " + v);
  for (const [n, text] of cases.format.count) assert.equal(count(n), text, "count(" + n + ")");
  for (const [f, text] of cases.format.filter_text) assert.equal(filterText(f), text, JSON.stringify(f));
  for (const [e, t, text] of cases.format.effect_unit) assert.equal(effectUnit(e, t), text, JSON.stringify([e, t]));
});
