import { useContext } from "preact/hooks";
import { Ctx } from "./context.js";
import { count, fmt } from "./format.js";

const isText = (c) => typeof c === "string" || (c !== null && typeof c === "object");

// A table: numbers (and missing values, as "n/a") right-aligned through fmt, text (and
// elements) left-aligned; a column whose first row holds text is a text column. Numbers in
// countColumns or countRows are row counts, written as count writes them (16,281), where fmt
// keeps a whole number as it is (a feature value such as the year 2019).
export function Table({ header, rows, testid, caption, class: klass, countColumns = [], countRows = [] }) {
  const textColumn = (i) => i === 0 || (rows.length > 0 && isText(rows[0][i]));
  const shown = (c, row, i) =>
    Number.isFinite(c) && (countColumns.includes(i) || countRows.includes(row)) ? count(c) : fmt(c);
  return (
    <div class="table-wrap">
      <table data-testid={testid} class={klass}>
        {caption ? <caption>{caption}</caption> : null}
        {header ? (
          <thead>
            <tr>
              {header.map((h, i) => (
                <th scope="col" class={textColumn(i) ? "text" : "num"}>
                  {h}
                </th>
              ))}
            </tr>
          </thead>
        ) : null}
        <tbody>
          {rows.map((r, row) => (
            <tr>
              {r.map((c, i) => (
                <td class={i === 0 || isText(c) ? "text" : "num"}>{isText(c) ? c : shown(c, row, i)}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

// Where a figure computed in the page comes from: "on the 5,000 sampled rows of 16,281".
export function Scope({ cohort, text }) {
  const ctx = useContext(Ctx);
  return <p class="scope muted">{text || ctx.scope(cohort || ctx.active)}</p>;
}

// A labelled <select> of options [{value, label}] or plain values.
export function Select({ label, name, value, options, onChange, testid, multiple, size }) {
  const items = options.map((o) => (typeof o === "object" && o !== null ? o : { value: o, label: String(o) }));
  return (
    <label class="select">
      <span>{label}</span>{" "}
      <select
        name={name}
        data-testid={testid}
        multiple={multiple}
        size={size}
        onChange={(e) =>
          onChange(multiple ? [...e.currentTarget.selectedOptions].map((o) => o.value) : e.currentTarget.value)
        }
      >
        {items.map((o) => (
          <option value={String(o.value)} selected={multiple ? (value || []).includes(String(o.value)) : String(o.value) === String(value)}>
            {o.label}
          </option>
        ))}
      </select>
    </label>
  );
}

// A section heading with an optional note.
export function Section({ title, children, id }) {
  return (
    <section id={id}>
      <h2>{title}</h2>
      {children}
    </section>
  );
}

export function Note({ children }) {
  return <p class="muted">{children}</p>;
}

export function Warn({ children }) {
  return <p class="warn">{children}</p>;
}
