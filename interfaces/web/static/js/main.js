// The page: sign-in, hash routes (#/ fleet, #/agents/{id}, #/proof/{position}), and the
// refresh that polls the current view.

import { forgetToken, signIn, token } from "./api.js";
import { h, notice } from "./dom.js";
import { loadAgent, renderAgent } from "./agent.js";
import { loadFleet, renderFleet } from "./fleet.js";
import { loadProof, renderProof } from "./proof.js";

const REFRESH_MS = 15000;
const $ = (id) => document.getElementById(id);
let generation = 0; // a render started for an older route or refresh is dropped
let fleetData = null;

function route() {
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query);
  const agent = path.match(/^\/agents\/([^/]+)$/);
  if (agent) return { view: "agent", agentId: decodeURIComponent(agent[1]) };
  const proof = path.match(/^\/proof\/(\d+)$/);
  if (proof) return { view: "proof", position: Number(proof[1]), agentId: params.get("agent") };
  return { view: "fleet", filter: { status: params.get("status") ?? "", q: params.get("q") ?? "" } };
}

function showSignIn(message = "") {
  $("nav").hidden = true;
  $("view").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message;
  $("client-id").focus();
}

async function render({ focus = true, keepFocus = null } = {}) {
  if (!token()) return showSignIn();
  $("sign-in").hidden = true;
  $("nav").hidden = false;
  const view = $("view");
  view.hidden = false;
  const mine = ++generation;
  const current = route();
  if (focus) view.replaceChildren(notice("loading", "Loading…"));
  view.setAttribute("aria-busy", "true");
  try {
    const content = await build(current);
    if (mine !== generation) return;
    view.replaceChildren(content);
    $("refreshed").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    if (mine !== generation || !token()) return;
    view.replaceChildren(errorView(current, error));
  } finally {
    view.removeAttribute("aria-busy");
  }
  if (keepFocus) {
    const input = $(keepFocus);
    input?.focus();
    input?.setSelectionRange?.(input.value.length, input.value.length);
  } else if (focus) {
    view.querySelector("h1")?.focus();
  }
}

async function build(current) {
  if (current.view === "agent") return renderAgent(await loadAgent(current.agentId));
  if (current.view === "proof") return renderProof(await loadProof(current.position), current.agentId);
  fleetData = await loadFleet();
  return renderFleet(fleetData, current.filter, setFilter);
}

// Filtering redraws from the data at hand; the URL keeps the filter, so it can be shared.
function setFilter(filter, { keepFocus = null } = {}) {
  const params = new URLSearchParams();
  if (filter.status) params.set("status", filter.status);
  if (filter.q) params.set("q", filter.q);
  const query = params.toString();
  const hash = `#/${query ? `?${query}` : ""}`;
  history.replaceState(null, "", hash);
  const view = $("view");
  view.replaceChildren(renderFleet(fleetData, filter, setFilter));
  if (keepFocus) {
    const input = $(keepFocus);
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  } else {
    $("status-filter")?.focus();
  }
}

function errorView(current, error) {
  const what = current.view === "agent" ? `Agent ${current.agentId}` : current.view === "proof" ? "This proof" : "The fleet";
  const hint = error.status === 404
    ? `${what} was not found in this tenant. Go back to the fleet and pick an agent from the list.`
    : `${what} could not be loaded: ${error.message}`;
  return h("div", {}, h("h1", { tabindex: "-1" }, "Not shown"), notice("error", hint), h("p", {}, h("a", { href: "#/" }, "Back to the fleet")));
}

async function refresh() {
  if (!token() || document.hidden) return;
  const active = document.activeElement;
  const keepFocus = active?.id && $("view").contains(active) ? active.id : null;
  await render({ focus: false, keepFocus });
}

function start() {
  $("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = $("client-id").value.trim();
    const secret = $("client-secret").value;
    if (!id || !secret) return showSignIn("Enter both the client ID and the client secret.");
    try {
      await signIn(id, secret);
      $("client-secret").value = "";
      render();
    } catch (error) {
      showSignIn(error.message);
    }
  });
  $("sign-out").addEventListener("click", () => {
    forgetToken();
    fleetData = null;
    $("view").replaceChildren();
    showSignIn("Signed out.");
  });
  $("refresh").addEventListener("click", () => render({ focus: false }));
  window.addEventListener("hashchange", () => render());
  window.addEventListener("signed-out", (event) => showSignIn(event.detail));
  setInterval(refresh, REFRESH_MS);
  render();
}

start();
