// The live server: `rai-audit dashboard` serves this page with the audit's model and answers
// what the page cannot compute (what-if predictions, explanations, counterfactuals, a cohort's
// figures on every test row). It is found on the page's own origin, with the token the URL
// carries (?token=...). A page opened from disk (file:) or inside the Kubeflow UI (no token)
// asks nothing of the network: `live` stays null and the views say how to go live.
import { useEffect, useState } from "preact/hooks";

export class LiveError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

// The client once the server answered, null when there is none (undefined while looking).
export let live = undefined;
let probe = null;

function served() {
  if (typeof window === "undefined" || typeof fetch !== "function") return null;
  const loc = window.location;
  if (loc.protocol !== "http:" && loc.protocol !== "https:") return null;
  const token = new URLSearchParams(loc.search).get("token");
  return token ? { base: loc.href, token } : null;
}

// Whether this page was opened from a server with a token (the live server, if it answers).
export function isServed() {
  return served() !== null;
}

function client(base, token, info) {
  async function call(path, body) {
    const init = { headers: { Authorization: "Bearer " + token }, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      init.method = "POST";
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(new URL(path, base).href, init);
    } catch (err) {
      throw new LiveError("the live server did not answer (is `rai-audit dashboard` still running?)", 0);
    }
    let value = null;
    try {
      value = await response.json();
    } catch (err) {
      value = null;
    }
    if (!response.ok) {
      throw new LiveError(value && value.error ? value.error : "the live server answered " + response.status, response.status);
    }
    return value;
  }
  return {
    info,
    row: (rowId) => call("api/row", { row_id: rowId }),
    predict: (rows) => call("api/predict", { rows }),
    explain: (rows) => call("api/explain", { rows }),
    counterfactuals: (row, rowId) => call("api/counterfactuals", { row, row_id: rowId }),
    cohort: (filter, name) => call("api/cohort", { filter, name }),
    call,
  };
}

// Resolves to the live client, or null; asks the server once per page.
export function connect() {
  if (probe) return probe;
  const where = served();
  if (!where) {
    live = null;
    probe = Promise.resolve(null);
    return probe;
  }
  const draft = client(where.base, where.token, null);
  probe = draft
    .call("api/info")
    .then((info) => (info && info.live === true ? client(where.base, where.token, info) : null))
    .catch(() => null)
    .then((found) => {
      live = found;
      return found;
    });
  return probe;
}

// The live client in a component: undefined while looking, null for a static page.
export function useLive() {
  const [found, setFound] = useState(live);
  useEffect(() => {
    let current = true;
    connect().then((value) => {
      if (current) setFound(value);
    });
    return () => {
      current = false;
    };
  }, []);
  return found;
}

// The command that serves this audit with its model (shown on a static page).
export const GO_LIVE = "rai-audit dashboard <the bundle folder, a fetched audit, or an archived audit's s3:// URI>";
