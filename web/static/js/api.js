// GraphQL over fetch, the only way the editor talks to the server, and the
// one way errors are shown: as the API's own sentence with its code.

const ENDPOINT = "/graphql";
const ACCEPT = "application/graphql-response+json, application/json;q=0.9";

// ApiError is a failed operation: code is the API's extensions.code (or
// NETWORK / HTTP_<status> when no GraphQL answer came back), message the
// sentence to show.
export class ApiError extends Error {
  constructor(code, message, details = {}) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.details = details;
  }
}

// The page is served with Referrer-Policy: no-referrer (email links carry
// tokens). Under that policy a browser sends "Origin: null" on POSTs, and
// the server counts the session cookie only with a real Origin, so every API
// request asks for strict-origin: the Origin is sent, the path never is.
const FETCH_DEFAULTS = { credentials: "same-origin", referrerPolicy: "strict-origin", cache: "no-store" };

async function send(init, signal) {
  let res;
  try {
    res = await fetch(ENDPOINT, { ...FETCH_DEFAULTS, ...init, signal });
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError("NETWORK", "Could not reach FastImage. Check your connection and try again.");
  }
  let body;
  try {
    body = await res.json();
  } catch {
    throw new ApiError(`HTTP_${res.status}`, `The server answered ${res.status} ${res.statusText || ""}`.trim() + ".");
  }
  if (body && Array.isArray(body.errors) && body.errors.length > 0) {
    const e = body.errors[0];
    const ext = e.extensions || {};
    throw new ApiError(ext.code || "ERROR", e.message || "Something went wrong.", { ...ext, path: e.path, data: body.data });
  }
  if (!res.ok || !body || !body.data) {
    throw new ApiError(`HTTP_${res.status}`, `The server answered ${res.status}.`);
  }
  return body.data;
}

// gql runs one operation and returns its data, or throws ApiError.
export function gql(query, variables = {}, { signal } = {}) {
  return send({
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: ACCEPT },
    body: JSON.stringify({ query, variables }),
  }, signal);
}

// gqlUpload runs an operation with files, as the GraphQL multipart request
// specification describes: files maps a variable path ("input.file") to a
// File or Blob (with a name).
export function gqlUpload(query, variables, files, { signal } = {}) {
  const form = new FormData();
  const map = {};
  const entries = Object.entries(files);
  entries.forEach(([path], i) => { map[String(i)] = [`variables.${path}`]; });
  form.append("operations", JSON.stringify({ query, variables }));
  form.append("map", JSON.stringify(map));
  entries.forEach(([, file], i) => form.append(String(i), file, file.name || "image.png"));
  return send({ method: "POST", headers: { Accept: ACCEPT }, body: form }, signal);
}

// showError renders err in container as the API's sentence, replacing the
// error shown there before.
export function showError(container, err) {
  if (!container) return;
  clearError(container);
  const p = document.createElement("p");
  p.className = "error";
  p.setAttribute("role", "alert");
  const code = err && err.code ? err.code : "ERROR";
  p.dataset.code = code;
  p.textContent = err && err.message ? err.message : String(err);
  container.prepend(p);
  return p;
}

// clearError removes the error showError put in container.
export function clearError(container) {
  if (!container) return;
  for (const el of container.querySelectorAll(":scope > .error")) el.remove();
}

// newIdempotencyKey returns a fresh key for one submission.
export function newIdempotencyKey() {
  return crypto.randomUUID();
}
