// Model metrics computed in the page from the carried rows, named and defined as
// rai_audit.core.metrics computes them over all rows (undefined: null, never 0).

const nan = (v) => (v === undefined || Number.isNaN(v) || !isFinite(v) ? null : v);

// The values of `values` at the positions `index` (a cohort's rows).
export function pick(values, index) {
  const out = new Array(index.length);
  for (let i = 0; i < index.length; i++) out[i] = values[index[i]];
  return out;
}

// Rows per (true, predicted) class, rows = true class, in `labels` order (others ignored).
export function confusionMatrix(yTrue, yPred, labels) {
  const pos = new Map(labels.map((l, i) => [l, i]));
  const matrix = labels.map(() => labels.map(() => 0));
  for (let i = 0; i < yTrue.length; i++) {
    const a = pos.get(yTrue[i]);
    const b = pos.get(yPred[i]);
    if (a !== undefined && b !== undefined) matrix[a][b] += 1;
  }
  return { labels: labels.slice(), matrix };
}

// From a confusion matrix: core.metrics.metric_from_counts (binary metrics of the positive
// class when `positive` is given, else macro averages over the classes present).
export function metricsFromCounts(matrix, positiveIndex) {
  const k = matrix.length;
  let n = 0;
  const hits = new Array(k).fill(0);
  const trueN = new Array(k).fill(0);
  const predN = new Array(k).fill(0);
  for (let a = 0; a < k; a++) {
    for (let b = 0; b < k; b++) {
      n += matrix[a][b];
      trueN[a] += matrix[a][b];
      predN[b] += matrix[a][b];
    }
    hits[a] = matrix[a][a];
  }
  const out = { count: n };
  const names = ["accuracy_score", "error_rate", "balanced_accuracy_score", "precision_score", "recall_score", "f1_score"];
  if (positiveIndex !== null && positiveIndex !== undefined) names.push("selection_rate", "false_positive_rate", "false_negative_rate");
  if (n === 0) {
    for (const m of names) out[m] = null;
    return out;
  }
  const hitSum = hits.reduce((s, h) => s + h, 0);
  out.accuracy_score = hitSum / n;
  out.error_rate = 1 - hitSum / n;
  const recalls = hits.map((h, i) => (trueN[i] > 0 ? h / trueN[i] : null)).filter((v) => v !== null);
  out.balanced_accuracy_score = recalls.length ? recalls.reduce((s, v) => s + v, 0) / recalls.length : null;
  let tps, predicted, actual;
  if (positiveIndex !== null && positiveIndex !== undefined) {
    const p = positiveIndex;
    const tp = hits[p];
    const fp = predN[p] - tp;
    const fn = trueN[p] - tp;
    const tn = n - tp - fp - fn;
    out.selection_rate = predN[p] / n;
    out.false_positive_rate = fp + tn ? fp / (fp + tn) : null;
    out.false_negative_rate = fn + tp ? fn / (fn + tp) : null;
    tps = [tp];
    predicted = [tp + fp];
    actual = [tp + fn];
  } else {
    const present = hits.map((_, i) => trueN[i] > 0 || predN[i] > 0);
    tps = hits.filter((_, i) => present[i]);
    predicted = predN.filter((_, i) => present[i]);
    actual = trueN.filter((_, i) => present[i]);
  }
  const mean = (values) => {
    const ok = values.filter((v) => v !== null);
    return ok.length ? ok.reduce((s, v) => s + v, 0) / ok.length : null;
  };
  out.precision_score = mean(tps.map((t, i) => (predicted[i] > 0 ? t / predicted[i] : null)));
  out.recall_score = mean(tps.map((t, i) => (actual[i] > 0 ? t / actual[i] : null)));
  out.f1_score = mean(tps.map((t, i) => (predicted[i] + actual[i] > 0 ? (2 * t) / (predicted[i] + actual[i]) : null)));
  return out;
}

// Binary ROC AUC (Mann-Whitney, ties counting half: scikit-learn's value).
export function rocAuc(isPositive, score) {
  const order = Array.from(score.keys()).sort((a, b) => score[a] - score[b]);
  let nPos = 0;
  let nNeg = 0;
  for (let i = 0; i < isPositive.length; i++) (isPositive[i] ? nPos++ : nNeg++);
  if (!nPos || !nNeg) return null;
  let below = 0; // negatives scored lower than the current level
  let sum = 0;
  for (let i = 0; i < order.length; ) {
    let j = i;
    let pos = 0;
    let neg = 0;
    while (j < order.length && score[order[j]] === score[order[i]]) {
      isPositive[order[j]] ? pos++ : neg++;
      j++;
    }
    sum += pos * (below + 0.5 * neg);
    below += neg;
    i = j;
  }
  return sum / (nPos * nNeg);
}

// Binary log loss of P(positive), clipped as scikit-learn clips (float64 eps).
export function logLoss(isPositive, probability) {
  if (!isPositive.length) return null;
  const eps = 2.220446049250313e-16;
  let s = 0;
  for (let i = 0; i < isPositive.length; i++) {
    const p = Math.min(Math.max(probability[i], eps), 1 - eps);
    s -= isPositive[i] ? Math.log(p) : Math.log(1 - p);
  }
  return s / isPositive.length;
}

// Classification metrics of rows given by their labels; `probability` (binary, P(positive))
// optional; rows without a probability leave roc_auc_score and log_loss undefined.
export function classificationMetrics(yTrue, yPred, { labels, positive = null, probability = null }) {
  const cm = confusionMatrix(yTrue, yPred, labels);
  const p = positive === null || positive === undefined ? null : labels.indexOf(positive);
  const out = metricsFromCounts(cm.matrix, p === -1 ? null : p);
  if (probability && p !== null && p !== -1) {
    const complete = probability.every((v) => v !== null && v !== undefined);
    const isPos = yTrue.map((y) => y === positive);
    out.roc_auc_score = complete ? rocAuc(isPos, probability) : null;
    out.log_loss = complete ? logLoss(isPos, probability) : null;
  }
  out.confusion_matrix = cm;
  return out;
}

function median(sorted) {
  const n = sorted.length;
  if (!n) return null;
  return n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

// Regression metrics (core.metrics' names) plus mean_error (mean of predicted - true).
export function regressionMetrics(yTrue, yPred) {
  const n = yTrue.length;
  const out = { count: n };
  if (!n) {
    for (const m of ["mean_absolute_error", "median_absolute_error", "mean_squared_error", "root_mean_squared_error", "r2_score", "mean_prediction", "mean_error"]) out[m] = null;
    return out;
  }
  let abs = 0;
  let sq = 0;
  let err = 0;
  let pred = 0;
  let mean = 0;
  const absErr = new Array(n);
  for (let i = 0; i < n; i++) {
    const e = yPred[i] - yTrue[i];
    err += e;
    abs += Math.abs(e);
    sq += e * e;
    pred += yPred[i];
    mean += yTrue[i];
    absErr[i] = Math.abs(e);
  }
  mean /= n;
  let tot = 0;
  for (let i = 0; i < n; i++) tot += (yTrue[i] - mean) ** 2;
  out.mean_absolute_error = abs / n;
  out.median_absolute_error = median(absErr.sort((a, b) => a - b));
  out.mean_squared_error = sq / n;
  out.root_mean_squared_error = Math.sqrt(sq / n);
  // scikit-learn: 1 - ss_res/ss_tot; a constant target gives 1 if predicted exactly, else 0.
  out.r2_score = n < 2 ? null : tot === 0 ? (sq === 0 ? 1 : 0) : 1 - sq / tot;
  out.mean_prediction = pred / n;
  out.mean_error = err / n;
  for (const k of Object.keys(out)) out[k] = k === "count" ? out[k] : nan(out[k]);
  return out;
}

// 1 where P(positive) >= threshold (the row is predicted positive), 0 where below, and
// null where the row has no probability.
export function thresholded(probability, threshold) {
  return probability.map((p) => (p === null || p === undefined ? null : p >= threshold ? 1 : 0));
}

// The binary metrics at a threshold: rows given by true labels and probabilities.
export function thresholdMetrics(yTrue, probability, positive, threshold) {
  const keep = [];
  for (let i = 0; i < yTrue.length; i++) if (probability[i] !== null && probability[i] !== undefined) keep.push(i);
  const t = keep.map((i) => (yTrue[i] === positive ? 1 : 0));
  const p = thresholded(keep.map((i) => probability[i]), threshold);
  const cm = confusionMatrix(t, p, [0, 1]);
  return metricsFromCounts(cm.matrix, 1);
}

// Counts of values in equal-width bins over [lo, hi] (the last bin closed).
export function histogram(values, bins, lo, hi) {
  const present = values.filter((v) => v !== null && v !== undefined && !Number.isNaN(v));
  if (lo === undefined) lo = present.reduce((a, b) => (b < a ? b : a), Infinity);
  if (hi === undefined) hi = present.reduce((a, b) => (b > a ? b : a), -Infinity);
  const counts = new Array(bins).fill(0);
  const width = (hi - lo) / bins || 1;
  for (const v of present) counts[Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / width)))] += 1;
  return { edges: Array.from({ length: bins + 1 }, (_, i) => lo + i * width), counts };
}

export function mean(values) {
  let s = 0;
  let n = 0;
  for (const v of values) {
    if (v !== null && v !== undefined && !Number.isNaN(v)) {
      s += v;
      n++;
    }
  }
  return n ? s / n : null;
}
