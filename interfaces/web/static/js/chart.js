// Hand-drawn SVG charts: a progress curve (0..100 over time) and a bar chart. Colours come
// from CSS classes, so nothing here needs an inline style.

import { s } from "./dom.js";
import { day } from "./format.js";

const W = 720;
const H = 280;
const PAD = { left: 44, right: 16, top: 12, bottom: 30 };

function scale(domainLow, domainHigh, rangeLow, rangeHigh) {
  const span = domainHigh - domainLow || 1;
  return (value) => rangeLow + ((value - domainLow) / span) * (rangeHigh - rangeLow);
}

// series: [{label, points: [{t: ms, v: 0..100}], main?}]; milestones: [{t, v, series, label}];
// forecast: {from: {t, v}, low, completion, high} (ms) or null; target: ms or null.
export function progressChart({ title, series, milestones = [], forecast = null, target = null }) {
  const times = series.flatMap((line) => line.points.map((p) => p.t));
  if (forecast) times.push(forecast.low, forecast.high, forecast.completion);
  if (target) times.push(target);
  const low = Math.min(...times);
  const high = Math.max(...times);
  const x = scale(low, high, PAD.left, W - PAD.right);
  const y = scale(0, 100, H - PAD.bottom, PAD.top);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
  svg.append(s("title", {}, title));

  for (const tick of [0, 25, 50, 75, 100]) {
    svg.append(s("line", { class: "grid", x1: PAD.left, x2: W - PAD.right, y1: y(tick), y2: y(tick) }));
    svg.append(s("text", { class: "axis", x: PAD.left - 6, y: y(tick) + 4, "text-anchor": "end" }, `${tick}`));
  }
  const ticks = timeTicks(low, high);
  ticks.forEach((t, i) => {
    const anchor = i === 0 ? "start" : i === ticks.length - 1 ? "end" : "middle";
    svg.append(s("text", { class: "axis", x: x(t), y: H - 8, "text-anchor": anchor }, day(new Date(t).toISOString())));
  });
  if (target) {
    svg.append(s("line", { class: "target", x1: x(target), x2: x(target), y1: PAD.top, y2: H - PAD.bottom }));
    svg.append(s("text", { class: "axis", x: x(target) - 4, y: PAD.top + 10, "text-anchor": "end" }, "target date"));
  }
  if (forecast) {
    const band = [[forecast.from.t, forecast.from.v], [forecast.low, 100], [forecast.high, 100]];
    svg.append(s("polygon", { class: "forecast-band", points: band.map(([t, v]) => `${x(t)},${y(v)}`).join(" ") },
      s("title", {}, `forecast: 100 % between ${day(new Date(forecast.low).toISOString())} and ${day(new Date(forecast.high).toISOString())}`)));
    svg.append(s("line", { class: "forecast", x1: x(forecast.from.t), y1: y(forecast.from.v), x2: x(forecast.completion), y2: y(100) }));
  }
  series.forEach((line, index) => {
    if (!line.points.length) return;
    const d = line.points.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join("");
    svg.append(s("path", { class: `line series-${line.main ? "main" : index % 6}`, d }, s("title", {}, line.label)));
  });
  for (const mark of milestones) {
    svg.append(s("circle", { class: "milestone", cx: x(mark.t), cy: y(mark.v), r: 5 }, s("title", {}, mark.label)));
  }
  return svg;
}

function timeTicks(low, high, count = 5) {
  if (high <= low) return [low];
  return Array.from({ length: count }, (_, i) => low + ((high - low) * i) / (count - 1));
}

// bars: [{label, value, title}]
export function barChart({ title, bars, valueLabel = (v) => `${v}` }) {
  const width = 480;
  const height = 180;
  const pad = { left: 8, right: 8, top: 16, bottom: 28 };
  const top = Math.max(1, ...bars.map((b) => b.value));
  const slot = (width - pad.left - pad.right) / Math.max(1, bars.length);
  const y = scale(0, top, height - pad.bottom, pad.top);
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart bars", role: "img", "aria-label": title });
  svg.append(s("title", {}, title));
  bars.forEach((bar, i) => {
    const left = pad.left + i * slot;
    svg.append(s("rect", { class: "bar", x: left + 2, width: Math.max(1, slot - 4), y: y(bar.value), height: y(0) - y(bar.value) },
      s("title", {}, bar.title ?? `${bar.label}: ${valueLabel(bar.value)}`)));
    if (bar.value) svg.append(s("text", { class: "axis", x: left + slot / 2, y: y(bar.value) - 3, "text-anchor": "middle" }, valueLabel(bar.value)));
    svg.append(s("text", { class: "axis", x: left + slot / 2, y: height - 10, "text-anchor": "middle" }, bar.label));
  });
  return svg;
}

