// The active cohort evaluated by the live server on every test row of the bundle (not only the
// rows this page carries): model overview, error rate, fairness and importance over its
// explained rows, with gather's own functions. Shown only when `rai-audit dashboard` serves the
// page; a static page shows nothing here (the What-if tab says how to go live).
import { useContext, useState } from "preact/hooks";
import { Ctx } from "../context.js";
import { filterKey } from "../cohorts.js";
import { count, filterText, fmt } from "../format.js";
import { useLive } from "../live.js";
import { Note, Table } from "../ui.jsx";

// accuracy_score -> "accuracy", false_positive_rate -> "false positive rate".
export const metricName = (name) => name.replace(/_score$/, "").replace(/_/g, " ");

// What the server is asked for: the cohort's filter (null: every row), or undefined when the
// page does not know it (a group of an older bundle whose filter it could not rebuild).
function cohortFilter(cohort) {
  if (cohort.source === "all") return null;
  return cohort.filter === null || cohort.filter === undefined ? undefined : cohort.filter;
}

function Figures({ result, task }) {
  const names = result.metric_names;
  const m = result.metrics;
  const error = task === "regression" ? ["mean absolute error", m.mean_absolute_error] : ["error rate", m.error_rate];
  return (
    <div data-testid="live-cohort-result" data-filter={JSON.stringify(result.filter)}>
      <p data-testid="live-cohort-count">
        {count(result.count)} of all {count(result.of)} test rows; {error[0]} <strong data-testid="live-cohort-error">{fmt(error[1])}</strong>.
      </p>
      <div class="grid">
        <div>
          <Table header={["Metric", "value"]} rows={names.map((n) => [metricName(n), m[n]])} testid="live-cohort-metrics" />
        </div>
        {m.confusion_matrix ? (
          <div>
            <Table
              caption="Confusion matrix (rows: true class, columns: predicted class)"
              header={["true \\ predicted", ...m.confusion_matrix.labels.map(String)]}
              rows={m.confusion_matrix.matrix.map((r, i) => [String(m.confusion_matrix.labels[i]), ...r])}
              countColumns={m.confusion_matrix.labels.map((_, i) => i + 1)}
              testid="live-cohort-confusion"
            />
          </div>
        ) : null}
      </div>
      {result.fairness.map((entry) => (
        <div data-testid="live-cohort-fairness" data-features={entry.features.join(" & ")}>
          <h4>Fairness within the cohort across {entry.features.join(" × ")}</h4>
          <Table
            header={["Group", "rows", ...names.map(metricName)]}
            rows={[
              ...entry.by_group.map((g) => [g.label + (g.too_few_rows ? " (too few rows to compare)" : ""), g.count, ...names.map((n) => g[n])]),
              ["difference", "", ...names.map((n) => entry.difference[n])],
              ["ratio", "", ...names.map((n) => entry.ratio[n])],
            ]}
            countColumns={[1]}
          />
        </div>
      ))}
      {result.importance ? (
        result.importance.explained_rows ? (
          <div>
            <h4>Feature importance over the cohort's {count(result.importance.explained_rows)} explained rows</h4>
            <Table
              header={["Feature", "mean |contribution|"]}
              rows={result.importance.global.map((g) => [g.feature, g.importance])}
              testid="live-cohort-importance"
            />
          </div>
        ) : (
          <Note>None of the cohort's rows was explained by the explanation step.</Note>
        )
      ) : null}
    </div>
  );
}

export default function LiveCohort() {
  const ctx = useContext(Ctx);
  const live = useLive();
  const [results, setResults] = useState({}); // filter key -> answer
  const [busy, setBusy] = useState(null);
  const [error, setError] = useState(null);
  if (!live) return null;
  const { active, doc } = ctx;
  const filter = cohortFilter(active);
  const key = filterKey(filter);
  const result = results[key];
  const run = () => {
    setBusy(key);
    setError(null);
    live
      .cohort(filter, active.name)
      .then((answer) => setResults((r) => ({ ...r, [key]: answer })))
      .catch((err) => setError(err.message))
      .finally(() => setBusy(null));
  };
  return (
    <details class="live-cohort" data-testid="live-cohort" open={!!result || busy === key}>
      <summary>
        Live: “{active.name}” on all {count(live.info.n_test)} test rows
      </summary>
      <p class="muted">
        The server computes the active cohort's figures on every test row of the audit ({filterText(filter)}), with the
        same functions as the bundle's own figures.
      </p>
      {filter === undefined ? (
        <Note>This cohort's filter is not known to the page: it cannot be evaluated here.</Note>
      ) : (
        <button type="button" data-testid="live-cohort-run" onClick={run} disabled={busy !== null}>
          {busy === key ? "Evaluating…" : result ? "Evaluate again" : "Evaluate on all " + count(live.info.n_test) + " test rows"}
        </button>
      )}
      {error ? (
        <p class="warn" role="alert" data-testid="live-cohort-error">
          {error}
        </p>
      ) : null}
      {result ? <Figures result={result} task={doc.task_type} /> : null}
    </details>
  );
}
