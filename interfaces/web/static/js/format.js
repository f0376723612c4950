// Numbers and instants as people read them, in the browser's language.

const percent = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const dateOnly = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

export const pct = (value) => (value === null || value === undefined ? "–" : `${percent.format(value)} %`);
export const num = (value) => (value === null || value === undefined ? "–" : number.format(value));
export const count = (value) => number.format(value ?? 0);

export function when(iso) {
  return iso ? dateTime.format(new Date(iso)) : "never";
}

export function day(iso) {
  return iso ? dateOnly.format(new Date(iso.length === 10 ? `${iso}T00:00:00` : iso)) : "–";
}

export function ago(iso, now = Date.now()) {
  if (!iso) return "never";
  const seconds = (new Date(iso).getTime() - now) / 1000;
  const units = [["day", 86400], ["hour", 3600], ["minute", 60]];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return relative.format(Math.round(seconds / size), unit);
  }
  return relative.format(Math.round(seconds), "second");
}

export function withUnit(value, unit) {
  if (value === null || value === undefined) return "–";
  return unit ? `${num(value)} ${unit}` : num(value);
}
