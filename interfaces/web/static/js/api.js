// Talking to the API: the token (sessionStorage only: gone with the tab, never a cookie or
// localStorage), JSON requests, and problems turned into errors that say what to do.

const TOKEN_KEY = "a2a-goals.token";
let seenPosition = 0; // the highest log position any answer showed this page

export class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail || title || `HTTP ${status}`);
    this.status = status;
    this.title = title;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  seenPosition = 0;
}

export function notePosition(position) {
  if (Number.isInteger(position) && position > seenPosition) seenPosition = position;
}

export async function signIn(clientId, clientSecret) {
  const body = new URLSearchParams({
    grant_type: "client_credentials",
    client_id: clientId,
    client_secret: clientSecret,
  });
  const answer = await fetch("/oauth/token", { method: "POST", body });
  const json = await answer.json().catch(() => ({}));
  if (!answer.ok) {
    const why = json.error === "invalid_client" ? "Unknown client ID or wrong secret." : json.error_description || json.detail;
    throw new ApiError(answer.status, json.error, why || `Sign-in failed (HTTP ${answer.status}).`);
  }
  sessionStorage.setItem(TOKEN_KEY, json.access_token);
}

// GET a JSON document under /api/v1. `readYourWrites` adds min_position, so a refresh never
// shows an older state than the page already showed (a replica behind waits to catch up).
export async function get(path, params = {}, { readYourWrites = false } = {}) {
  const url = new URL(`/api/v1${path}`, location.origin);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  if (readYourWrites && seenPosition > 0) url.searchParams.set("min_position", seenPosition);
  const answer = await fetch(url, { headers: { Authorization: `Bearer ${token()}` } });
  if (answer.ok) return answer.json();
  const problem = await answer.json().catch(() => ({}));
  if (answer.status === 401) {
    forgetToken();
    window.dispatchEvent(new CustomEvent("signed-out", { detail: "Your session has ended: sign in again." }));
  }
  throw new ApiError(answer.status, problem.title, describe(answer.status, problem));
}

function describe(status, problem) {
  if (status === 403) return "This client lacks the scope for this part; ask for a client with it.";
  if (status === 503 || status === 504) return "The server is busy or catching up; it is retried on the next refresh.";
  return problem.detail || problem.title || `The server answered HTTP ${status}.`;
}

// Every page of a list answered as {items, total} with limit/offset.
export async function getAllByOffset(path, params, pageSize = 500) {
  const items = [];
  for (let offset = 0; ; offset += pageSize) {
    const page = await get(path, { ...params, limit: pageSize, offset }, { readYourWrites: offset === 0 });
    items.push(...page.items);
    if (page.items.length < pageSize || items.length >= page.total) return items;
  }
}

// Every page of a list answered as {items, next_cursor}, up to `maxPages`.
export async function getAllByCursor(path, params, { pageSize = 500, maxPages = 20 } = {}) {
  const items = [];
  let cursor;
  for (let n = 0; n < maxPages; n += 1) {
    const page = await get(path, { ...params, limit: pageSize, cursor }, { readYourWrites: n === 0 });
    items.push(...page.items);
    if (!page.next_cursor) return { items, complete: true };
    cursor = page.next_cursor;
  }
  return { items, complete: false };
}
