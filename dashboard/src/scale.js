// The error colour scale: light (no error) to dark red (twice the overall rate or more).

const LOW = [255, 245, 240];
const HIGH = [165, 15, 21];

// 0..1: where a rate sits from 0 to twice the overall rate.
export function errorPosition(rate, overall) {
  if (rate === null || rate === undefined || Number.isNaN(rate)) return null;
  const top = overall > 0 ? 2 * overall : 1;
  return Math.max(0, Math.min(1, rate / top));
}

function rgb(rate, overall) {
  const t = errorPosition(rate, overall);
  if (t === null) return [238, 238, 238];
  return LOW.map((lo, i) => Math.round(lo + (HIGH[i] - lo) * t));
}

export function errorColour(rate, overall) {
  return "rgb(" + rgb(rate, overall).join(",") + ")";
}

// WCAG relative luminance of an sRGB colour.
function luminance(c) {
  const [r, g, b] = c.map((v) => {
    const s = v / 255;
    return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

// White or near-black text, whichever contrasts more with the cell's colour.
export function textColour(rate, overall) {
  const l = luminance(rgb(rate, overall));
  const dark = 0; // black: with white, one of them always contrasts 4.5:1 or more
  return 1.05 / (l + 0.05) > (l + 0.05) / (dark + 0.05) ? "#ffffff" : "#000000";
}
