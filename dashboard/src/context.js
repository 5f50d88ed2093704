import { createContext } from "preact";

// What the App gives every view: data, the decoded table, cohorts, the active cohort,
// the compared cohorts, the selected row (see dashboard/README.md).
export const Ctx = createContext(null);
