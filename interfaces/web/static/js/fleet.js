// The fleet: analytics on top, then every agent of the tenant with its progress and flags.

import { get, getAllByOffset } from "./api.js";
import { barChart } from "./chart.js";
import { h, link, notice } from "./dom.js";
import { ago, count, day, pct, when } from "./format.js";

const STATUSES = ["active", "paused", "completed", "cancelled"];

export async function loadFleet() {
  const [goals, analytics, alerts] = await Promise.all([
    getAllByOffset("/goals/", {}),
    get("/goals/analytics", {}, { readYourWrites: true }),
    get("/goals/alerts", {}, { readYourWrites: true }),
  ]);
  return { goals, analytics, alerts };
}

function flagsByAgent(alerts) {
  const flags = new Map();
  const add = (items, flag, text) => {
    for (const item of items) {
      const list = flags.get(item.agent_id) ?? [];
      list.push({ flag, text: item.since ? `${text} since ${when(item.since)}` : text });
      flags.set(item.agent_id, list);
    }
  };
  add(alerts.stagnant, "stagnant", "No progress");
  add(alerts.at_risk, "at-risk", "At risk of missing its target date");
  add(alerts.collection_failing, "failing", "Metrics collection failing");
  return flags;
}

export function renderFleet(data, filter, onFilter) {
  const { goals, analytics, alerts } = data;
  const root = h("div", { class: "fleet" });
  root.append(h("h1", { tabindex: "-1" }, "Fleet"));
  if (!goals.length) {
    root.append(notice("empty", "No agent of this tenant has goals yet. Set some with POST /api/v1/goals/agents/{agent_id}, or load the demo fleet with `a2a-goals demo` from the server's folder."));
    return root;
  }
  root.append(summary(analytics), filters(filter, onFilter));
  const flags = flagsByAgent(alerts);
  const shown = goals.filter((goal) => matches(goal, filter, flags));
  root.append(h("p", { class: "muted", id: "fleet-count", "aria-live": "polite" }, `${count(shown.length)} of ${count(goals.length)} agents`));
  root.append(shown.length ? table(shown, flags) : notice("empty", "No agent matches this filter: clear the text or choose another status."));
  return root;
}

function matches(goal, filter, flags) {
  if (filter.status === "flagged" && !flags.has(goal.agent_id)) return false;
  if (filter.status && filter.status !== "flagged" && goal.status !== filter.status) return false;
  const text = (filter.q ?? "").trim().toLowerCase();
  return !text || `${goal.agent_id} ${goal.goals.purpose_statement}`.toLowerCase().includes(text);
}

function summary(analytics) {
  const cards = h("div", { class: "cards" },
    stat("Agents with goals", count(analytics.agents_with_goals)),
    ...STATUSES.map((status) => stat(capital(status), count(analytics.by_status[status]))),
    stat("Mean progress", pct(analytics.mean_progress)),
    stat("Median progress", pct(analytics.median_progress)),
    stat("Milestones reached", count(analytics.milestones_achieved)),
  );
  const histogram = barChart({
    title: "Agents by overall progress",
    bars: analytics.progress_distribution.map((b) => ({ label: `${b.from}`, value: b.agents, title: `${b.from}–${b.to} %: ${count(b.agents)} agents` })),
  });
  const weeks = analytics.milestones_per_week.slice(-12);
  const perWeek = weeks.length
    ? barChart({ title: "Milestones per week", bars: weeks.map((w) => ({ label: day(w.bucket), value: w.count, title: `week of ${day(w.bucket)}: ${count(w.count)} milestones` })) })
    : notice("empty", "No milestone reached yet.");
  return h("section", { class: "summary", "aria-label": "Fleet analytics" }, cards,
    h("div", { class: "charts" },
      h("figure", {}, h("figcaption", {}, "Agents by overall progress (%)"), histogram),
      h("figure", {}, h("figcaption", {}, "Milestones per week"), perWeek)));
}

function stat(label, value) {
  return h("div", { class: "stat" }, h("span", { class: "stat-value" }, value), h("span", { class: "stat-label" }, label));
}

function filters(filter, onFilter) {
  const status = h("select", { id: "status-filter", onchange: (e) => onFilter({ ...filter, status: e.target.value }) },
    h("option", { value: "" }, "any status"),
    ...STATUSES.map((value) => h("option", { value, selected: filter.status === value }, value)),
    h("option", { value: "flagged", selected: filter.status === "flagged" }, "flagged (stagnant, at risk, failing)"));
  const text = h("input", { id: "text-filter", type: "search", value: filter.q ?? "", placeholder: "agent or purpose",
    oninput: (e) => onFilter({ ...filter, q: e.target.value }, { keepFocus: "text-filter" }) });
  return h("form", { class: "filters", role: "search", onsubmit: (e) => e.preventDefault() },
    h("label", { for: "status-filter" }, "Status"), status,
    h("label", { for: "text-filter" }, "Search"), text);
}

function table(goals, flags) {
  const rows = goals.map((goal) => {
    const overall = goal.progress.overall_progress;
    const agentFlags = flags.get(goal.agent_id) ?? [];
    return h("tr", {},
      h("th", { scope: "row", "data-label": "Agent" }, link(`#/agents/${encodeURIComponent(goal.agent_id)}`, goal.agent_id),
        h("span", { class: "purpose" }, goal.goals.purpose_statement)),
      h("td", { "data-label": "Status" }, h("span", { class: `status status-${goal.status}` }, goal.status)),
      h("td", { "data-label": "Progress" }, h("div", { class: "progress" },
        h("progress", { max: 100, value: overall, "aria-label": `${goal.agent_id} overall progress` }),
        h("span", { class: "progress-value" }, pct(overall)))),
      h("td", { "data-label": "Last update" }, h("time", { datetime: goal.progress.last_updated ?? "", title: when(goal.progress.last_updated) }, ago(goal.progress.last_updated))),
      h("td", { "data-label": "Flags" }, agentFlags.length
        ? agentFlags.map((f) => h("span", { class: `flag flag-${f.flag}`, title: f.text }, f.flag))
        : h("span", { class: "muted" }, "none")),
    );
  });
  return h("table", { class: "agents" },
    h("caption", { class: "visually-hidden" }, "Agents of this tenant"),
    h("thead", {}, h("tr", {}, ...["Agent", "Status", "Overall progress", "Last update", "Flags"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows));
}

function capital(text) {
  return text[0].toUpperCase() + text.slice(1);
}
