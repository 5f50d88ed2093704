import { useEffect, useRef } from "preact/hooks";

// Charts still drawing: the App marks the page ready when the first view's are done.
const pending = new Set();
let waiters = [];

function settle() {
  if (pending.size) return;
  const done = waiters;
  waiters = [];
  done.forEach((f) => f());
}

// Resolves once no chart is being drawn (after the current render's effects ran).
export function chartsDrawn() {
  return new Promise((resolve) => {
    waiters.push(resolve);
    requestAnimationFrame(() => setTimeout(settle, 0));
  });
}

// A Vega-Lite chart drawn as SVG by vegaEmbed (the Vega bundle's global); `label` is what a
// screen reader says of it.
export function Chart({ spec, label, testid }) {
  const box = useRef(null);
  // Redrawn when the spec's content changes, not for an equal spec built again.
  const key = spec ? JSON.stringify(spec) : "";
  useEffect(() => {
    if (!spec || !box.current) return undefined;
    const node = box.current;
    let view = null;
    let cancelled = false;
    const job = Promise.resolve()
      .then(() => window.vegaEmbed(node, spec, { actions: false, renderer: "svg" }))
      .then((result) => {
        view = result.view;
        if (cancelled) view.finalize();
      })
      .catch((err) => console.error(err))
      .finally(() => {
        pending.delete(job);
        settle();
      });
    pending.add(job);
    return () => {
      cancelled = true;
      if (view) view.finalize();
    };
  }, [key]);
  if (!spec) return <p class="muted">no data for this chart</p>;
  return <div class="chart" role="img" aria-label={label || "chart"} data-testid={testid} ref={box} />;
}
