// One agent: its curves towards the target, KPIs, timeline, auto-update and registry card.

import { ApiError, get, getAllByCursor, notePosition } from "./api.js";
import { progressChart } from "./chart.js";
import { h, link, notice } from "./dom.js";
import { ago, count, day, num, pct, when, withUnit } from "./format.js";

const TIMELINE_SHOWN = 100;
const KINDS = [
  ["", "every change"],
  ["milestone_reached", "milestones"],
  ["status_changed", "status changes"],
  ["goals_set", "goals set"],
  ["progress_updated", "progress"],
  ["auto_update_configured metrics_collection_failed metrics_collection_recovered goal_stagnant", "collection and stalls"],
];
let timelineKind = ""; // kept across refreshes of the view

// Each part is loaded on its own: a part that fails (a missing scope, a busy server) says so
// in its own panel and the rest of the view still shows.
export async function loadAgent(agentId) {
  const id = encodeURIComponent(agentId);
  const settle = (promise) => promise.then((value) => ({ value }), (error) => ({ error }));
  const [goal, analytics, history, autoUpdate, registry] = await Promise.all([
    get(`/goals/agents/${id}`, {}, { readYourWrites: true }),
    settle(get(`/goals/agents/${id}/analytics`, {}, { readYourWrites: true })),
    settle(getAllByCursor(`/goals/agents/${id}/history`, {})),
    settle(get(`/goals/agents/${id}/auto-update`, {}, { readYourWrites: true })),
    settle(findRegistered(agentId)),
  ]);
  for (const item of history.value?.items ?? []) notePosition(item.position);
  return { goal, analytics, history, autoUpdate, registry };
}

// The tenant's own registered agents, paged: asking for one that is not registered would be
// a 404 the browser reports as an error, and most agents with goals are not in the registry.
async function findRegistered(agentId) {
  let cursor;
  for (let page = 0; page < 20; page += 1) {
    const answer = await get("/agents", { owned: true, limit: 100, cursor });
    const found = answer.items.find((record) => record.agent_id === agentId);
    if (found || !answer.next_cursor) return found ?? null;
    cursor = answer.next_cursor;
  }
  return null;
}

export function renderAgent(data) {
  const { goal } = data;
  const objectives = goal.goals.primary_objectives;
  const root = h("div", { class: "agent" });
  root.append(
    h("p", { class: "crumbs" }, link("#/", "Fleet"), " / ", goal.agent_id),
    h("h1", { tabindex: "-1" }, goal.agent_id),
    h("p", { class: "purpose" }, goal.goals.purpose_statement),
    h("div", { class: "cards" },
      stat("Status", h("span", { class: `status status-${goal.status}` }, goal.status)),
      stat("Overall progress", pct(goal.progress.overall_progress)),
      stat("Target date", day(goal.target_date)),
      stat("Forecast", forecastText(data.analytics.value)),
      stat("Last update", h("time", { datetime: goal.progress.last_updated ?? "", title: when(goal.progress.last_updated) }, ago(goal.progress.last_updated))),
      stat("Milestones", count(goal.progress.milestones_achieved.length))),
    section("Progress over time", chartPart(data, objectives)),
    section("Objectives and KPIs", kpiTable(goal, objectives)),
    h("div", { class: "columns" },
      section("Auto-update", autoUpdatePart(data.autoUpdate)),
      section("Registry", registryPart(data.registry))),
    section("History", timelinePart(data.history, objectives, goal.agent_id)),
  );
  return root;
}

function section(title, ...body) {
  const id = `part-${title.toLowerCase().replace(/[^a-z]+/g, "-")}`;
  return h("section", { class: "part", "aria-labelledby": id }, h("h2", { id }, title), ...body);
}

function stat(label, value) {
  return h("div", { class: "stat" }, h("span", { class: "stat-value" }, value), h("span", { class: "stat-label" }, label));
}

function forecastText(analytics) {
  if (!analytics?.forecast) return "–";
  const f = analytics.forecast;
  return `${day(f.completion)}${analytics.at_risk ? " (at risk)" : ""}`;
}

function failed(part, error) {
  if (error instanceof ApiError && error.status === 403) return notice("error", `${part}: this client lacks the scope to read it.`);
  return notice("error", `${part} could not be loaded: ${error.message}`);
}

const titleOf = (objectives, id) => (id === "overall" ? "Overall" : objectives.find((o) => o.id === id)?.title ?? id);
const timeOf = (item) => new Date(item.data.observed_at ?? item.timestamp).getTime();

function chartPart(data, objectives) {
  if (data.history.error) return failed("The progress history", data.history.error);
  const items = data.history.value.items;
  const progress = items.filter((i) => i.action === "progress_updated");
  if (!progress.length) return notice("empty", "No progress recorded yet: PUT /api/v1/goals/agents/{agent_id}/progress, or configure auto-update.");
  const lines = objectives.map((o) => ({ id: o.id, label: o.title, points: [] }));
  const overall = { id: "overall", label: "Overall", main: true, points: [] };
  for (const item of progress) {
    const t = timeOf(item);
    overall.points.push({ t, v: item.data.overall_progress });
    for (const line of lines) {
      const v = item.data.objective_progress?.[line.id];
      if (v !== undefined) line.points.push({ t, v });
    }
  }
  for (const line of [overall, ...lines]) line.points.sort((a, b) => a.t - b.t);
  const milestones = milestoneMarks(items, objectives);
  const analytics = data.analytics.value;
  const last = overall.points.at(-1);
  const forecast = analytics?.forecast && data.goal.status === "active" && last.v < 100
    ? { from: last, low: dayEnd(analytics.forecast.low), completion: dayEnd(analytics.forecast.completion), high: dayEnd(analytics.forecast.high) }
    : null;
  const series = [overall, ...lines];
  const chart = progressChart({
    title: `Progress of ${data.goal.agent_id}: overall and per objective, milestones marked`,
    series,
    milestones,
    forecast,
    target: data.goal.target_date ? dayEnd(data.goal.target_date) : null,
  });
  const legend = h("ul", { class: "legend" },
    series.map((line, i) => h("li", {}, h("span", { class: `swatch series-${line.main ? "main" : i % 6}` }), line.label)),
    h("li", {}, h("span", { class: "swatch milestone" }), `milestone (${count(milestones.length)})`),
    forecast ? h("li", {}, h("span", { class: "swatch forecast-band" }), `forecast to 100 %: ${day(analytics.forecast.low)} – ${day(analytics.forecast.high)}`) : null,
    data.goal.target_date ? h("li", {}, h("span", { class: "swatch target" }), `target date ${day(data.goal.target_date)}`) : null);
  const note = data.history.value.complete ? null : notice("empty", "Only the first part of a long history is drawn.");
  return h("figure", { class: "curve" }, chart, h("figcaption", {}, legend), note);
}

const dayEnd = (date) => new Date(`${date}T23:59:59Z`).getTime();

// A milestone is recorded in the same save as the progress that crossed it: it sits on the
// curve at that progress's observed time.
function milestoneMarks(items, objectives) {
  const marks = [];
  let lastProgress = null;
  for (const item of items) {
    if (item.action === "progress_updated") lastProgress = item;
    if (item.action !== "milestone_reached" || !lastProgress) continue;
    const { objective_id: objective, threshold, progress } = item.data;
    marks.push({ t: timeOf(lastProgress), v: progress ?? threshold, label: `${titleOf(objectives, objective)} reached ${pct(threshold)} (${when(lastProgress.data.observed_at ?? lastProgress.timestamp)})` });
  }
  return marks;
}

function kpiTable(goal, objectives) {
  if (!objectives.length) return notice("empty", "These goals have no objectives: progress is recorded as one overall value.");
  const rows = objectives.map((o) => {
    const kpi = o.kpi;
    const value = goal.progress.kpi_values?.[o.id];
    return h("tr", {},
      h("th", { scope: "row", "data-label": "Objective" }, o.title),
      h("td", { "data-label": "Weight" }, num(o.weight)),
      h("td", { "data-label": "Progress" }, h("div", { class: "progress" },
        h("progress", { max: 100, value: goal.progress.objective_progress?.[o.id] ?? 0, "aria-label": `${o.title} progress` }),
        h("span", { class: "progress-value" }, pct(goal.progress.objective_progress?.[o.id] ?? 0)))),
      h("td", { "data-label": "KPI" }, kpi ? `${kpi.metric} (${kpi.direction === "decrease" ? "lower is better" : "higher is better"})` : h("span", { class: "muted" }, "none: progress by hand")),
      h("td", { "data-label": "Baseline" }, kpi ? withUnit(kpi.baseline, kpi.unit) : "–"),
      h("td", { "data-label": "Target" }, kpi ? withUnit(kpi.target, kpi.unit) : "–"),
      h("td", { "data-label": "Current" }, kpi ? withUnit(value, kpi.unit) : "–"));
  });
  return h("table", { class: "kpis" },
    h("thead", {}, h("tr", {}, ...["Objective", "Weight", "Progress", "KPI", "Baseline", "Target", "Current"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows));
}

function autoUpdatePart(part) {
  if (part.error) return failed("Auto-update", part.error);
  const { config, collection } = part.value;
  const state = h("p", {}, "Collection: ", h("span", { class: `collection collection-${collection.state}` }, collection.state),
    collection.failing_since ? ` since ${when(collection.failing_since)}` : "");
  if (!config) {
    return [h("p", {}, "Auto-update is off: progress is recorded by hand. POST /api/v1/goals/agents/{agent_id}/auto-update with a metrics URL to collect it."), state];
  }
  const mapping = Object.entries(config.kpi_metrics ?? {});
  return [
    h("dl", { class: "facts" },
      h("dt", {}, "Enabled"), h("dd", {}, config.enabled ? "yes" : "no"),
      h("dt", {}, "Every"), h("dd", {}, `${num(config.interval_s)} s`),
      h("dt", {}, "Metrics URL"), h("dd", {}, config.metrics_url ?? "–"),
      h("dt", {}, "Health URL"), h("dd", {}, config.health_url ?? "–"),
      h("dt", {}, "KPIs from metrics"), h("dd", {}, mapping.length ? mapping.map(([kpi, m]) => `${kpi} ← ${m.metric ?? JSON.stringify(m)}`).join(", ") : "none")),
    state,
    collection.failing_reason ? notice("error", `Last collection failed: ${collection.failing_reason}`) : h("p", { class: "muted" }, collection.state === "collecting" ? "Last collection succeeded." : ""),
  ];
}

function registryPart(part) {
  if (part.error) return failed("The registry card", part.error);
  const record = part.value;
  if (!record) return h("p", {}, "Not in the registry: POST /api/v1/agents with its A2A AgentCard to publish it.");
  const card = record.card;
  const interfaces = card.supportedInterfaces?.map((i) => `${i.protocolBinding ?? i.transport ?? ""} ${i.url}`.trim())
    ?? (card.url ? [`${card.preferredTransport ?? "JSONRPC"} ${card.url}`] : []);
  const skills = (card.skills ?? []).map((skill) => skill.name ?? skill.id);
  const goals = record.goals;
  return h("div", { class: "registry-card" },
    h("p", { class: "card-name" }, card.name ?? record.agent_id, card.version ? ` · v${card.version}` : ""),
    card.description ? h("p", {}, card.description) : null,
    h("dl", { class: "facts" },
      h("dt", {}, "Visibility"), h("dd", {}, record.visibility),
      h("dt", {}, "Skills"), h("dd", {}, skills.length ? skills.join(", ") : "none"),
      h("dt", {}, "Interfaces"), h("dd", {}, interfaces.length ? h("ul", { class: "plain" }, interfaces.map((i) => h("li", {}, i))) : "none"),
      h("dt", {}, "Goals extension"), h("dd", {}, goals.has_goals ? `${goals.goal_status}, ${pct(goals.overall_progress)}, ${count(goals.milestones_achieved)} milestones` : "no goals"),
      h("dt", {}, "Signature"), h("dd", {}, record.signature.state, record.signature.detail ? h("span", { class: "muted" }, ` (${record.signature.detail})`) : null),
      h("dt", {}, "Reachable"), h("dd", {}, record.reachability.reachable === null ? "not checked yet" : record.reachability.reachable ? "yes" : `no: ${record.reachability.last_error ?? ""}`)));
}

function timelinePart(part, objectives, agentId) {
  if (part.error) return failed("The history", part.error);
  const items = part.value.items;
  if (!items.length) return notice("empty", "Nothing recorded yet.");
  const kinds = timelineKind.split(" ");
  const chosen = timelineKind ? items.filter((item) => kinds.includes(item.action)) : items;
  const shown = chosen.slice(-TIMELINE_SHOWN).reverse();
  const entries = shown.map((item) => h("li", { class: `entry entry-${item.action}` },
    h("time", { datetime: item.timestamp }, when(item.timestamp)),
    h("span", { class: "actor" }, item.actor ?? "unknown"),
    h("span", { class: "change" }, describe(item, objectives)),
    link(`#/proof/${item.position}?agent=${encodeURIComponent(agentId)}`, "audit proof", { "aria-label": `audit proof of event ${item.position}` })));
  const holder = h("div", { id: "timeline" });
  const select = h("select", { id: "timeline-kind", onchange: (event) => {
    timelineKind = event.target.value;
    holder.replaceWith(...timelinePart(part, objectives, agentId));
    document.getElementById("timeline-kind")?.focus();
  } }, KINDS.map(([value, label]) => h("option", { value, selected: value === timelineKind }, label)));
  holder.append(
    h("p", { class: "filters" }, h("label", { for: "timeline-kind" }, "Show"), select),
    h("p", { class: "muted" }, chosen.length > TIMELINE_SHOWN ? `The latest ${TIMELINE_SHOWN} of ${count(chosen.length)} changes, newest first.` : `${count(chosen.length)} changes, newest first.`),
    shown.length ? h("ol", { class: "timeline" }, entries) : notice("empty", "No change of this kind yet: choose another kind."));
  return [holder];
}

function describe(item, objectives) {
  const d = item.data;
  switch (item.action) {
    case "goals_set":
      return `Goals set (goal version ${d.goal_version}): ${count(d.goals.primary_objectives.length)} objectives${d.target_date ? `, target ${day(d.target_date)}` : ""}`;
    case "progress_updated":
      return `Progress ${pct(d.previous_overall_progress)} → ${pct(d.overall_progress)} (${d.source}, observed ${when(d.observed_at)})`;
    case "milestone_reached":
      return `Milestone: ${titleOf(objectives, d.objective_id)} reached ${pct(d.threshold)}`;
    case "status_changed":
      return `Status ${d.from} → ${d.to}${d.reason ? `: ${d.reason}` : ""}`;
    case "auto_update_configured":
      return `Auto-update ${d.config?.enabled === false ? "turned off" : "configured"}`;
    case "metrics_collection_failed":
      return `Metrics collection failed: ${d.reason}`;
    case "metrics_collection_recovered":
      return "Metrics collection recovered";
    case "goal_stagnant":
      return `No progress since ${when(d.since)}`;
    default:
      return item.action;
  }
}
