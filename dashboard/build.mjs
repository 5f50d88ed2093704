// Builds the dashboard's script: src/main.jsx and its imports (Preact included) as one
// minified IIFE, written where gather's template reads it. Deterministic: the same sources
// and lock file give the same bytes (tests/report/test_dashboard_build.py checks it).
//   node build.mjs [output file]   (default ../components/rai_audit/report/templates/dashboard.js)
import { build } from "esbuild";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outfile = resolve(process.argv[2] || resolve(here, "../components/rai_audit/report/templates/dashboard.js"));

await build({
  absWorkingDir: here,
  entryPoints: ["src/main.jsx"],
  outfile,
  bundle: true,
  // An IIFE: the Vega bundle's classic script defines globals (vegaEmbed, el, ...) that the
  // app's names must not clash with.
  format: "iife",
  platform: "browser",
  target: "es2020",
  minify: true,
  sourcemap: false,
  legalComments: "none",
  charset: "utf8",
  jsx: "automatic",
  jsxImportSource: "preact",
  logLevel: "warning",
  // Preact's MIT license asks its notice to travel with every copy; minifying drops comments.
  banner: {
    js:
      "// rai-audit dashboard: built from dashboard/ (npm run build); do not edit.\n" +
      "// Includes Preact (https://preactjs.com), MIT License, Copyright (c) 2015-present Jason Miller.",
  },
});
