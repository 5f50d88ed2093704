// The error colour scale: light (no error) to dark red (twice the overall rate or more).

const LOW = [255, 245, 240];
const HIGH = [165, 15, 21];

// 0..1: where a rate sits from 0 to twice the overall rate.
export function errorPosition(rate, overall) {
  if (rate === null || rate === undefined || Number.isNaN(rate)) return null;
  const top = overall > 0 ? 2 * overall : 1;
  return Math.max(0, Math.min(1, rate / top));
}

export function errorColour(rate, overall) {
  const t = errorPosition(rate, overall);
  if (t === null) return "#eeeeee";
  const c = LOW.map((lo, i) => Math.round(lo + (HIGH[i] - lo) * t));
  return "rgb(" + c.join(",") + ")";
}

// Text readable on that colour.
export function textColour(rate, overall) {
  const t = errorPosition(rate, overall);
  return t !== null && t > 0.5 ? "#ffffff" : "#1a1a1a";
}
