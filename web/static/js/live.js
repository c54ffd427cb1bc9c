// A graphql-transport-ws client for the editor's live parts: one WebSocket
// (authenticated by the session cookie; the server checks the Origin), any
// number of subscriptions on it, and automatic reconnection with backoff
// and jitter, also when the network comes back or the tab is shown again.
// After a reconnect every subscription is sent again with the variables its
// caller computes then (resumeVariables), so a caller that passes the last
// seq it saw misses nothing; followSeq does that and drops duplicates.

import { ApiError } from "./api.js";

const PROTOCOL = "graphql-transport-ws";
const ACK_TIMEOUT_MS = 10000;
// The server pings every 25 s by default; silence for longer than this
// means the connection is dead even if the browser has not noticed.
const SILENCE_MS = 35000;
const PONG_TIMEOUT_MS = 5000;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 15000;

const subs = new Map(); // id -> {query, variables, sink, started}
const statusListeners = new Set();
const signedOutListeners = new Set();
let ws = null;
let acked = false;
let state = "offline";
let attempt = 0;
let nextId = 1;
let enabled = false;
let retryTimer = 0;
let ackTimer = 0;
let silenceTimer = 0;
let pongTimer = 0;

function setState(s) {
  if (s === state) return;
  state = s;
  for (const fn of statusListeners) fn(s);
}

// onStatus calls fn with "connecting" | "live" | "reconnecting" | "offline"
// now and on every change; it returns a function that stops the calls.
export function onStatus(fn) {
  statusListeners.add(fn);
  fn(state);
  return () => statusListeners.delete(fn);
}

// onSignedOut calls fn when the server ends the socket because the session
// no longer works (close 4401/4403, or an UNAUTHENTICATED subscription).
export function onSignedOut(fn) {
  signedOutListeners.add(fn);
  return () => signedOutListeners.delete(fn);
}

// status is the connection's state now.
export function status() {
  return state;
}

// resumeVariables marks fn as the variables of a subscription: fn is called
// each time it is (re)sent, so it can pass the last seq seen.
export function resumeVariables(fn) {
  return fn;
}

function variablesOf(sub) {
  return typeof sub.variables === "function" ? sub.variables() : (sub.variables || {});
}

function send(msg) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
}

function startSub(id, sub) {
  sub.started = true;
  send({ id, type: "subscribe", payload: { query: sub.query, variables: variablesOf(sub) } });
}

// subscribe starts a subscription and returns the function that stops it.
// variables is an object or a function (see resumeVariables); sink has
// next(data), error(ApiError) and complete(), all optional.
export function subscribe(query, variables, sink = {}) {
  const id = String(nextId++);
  const sub = { query, variables, sink, started: false };
  subs.set(id, sub);
  if (acked) startSub(id, sub);
  else connect();
  return () => {
    if (!subs.delete(id)) return;
    if (sub.started && acked) send({ id, type: "complete" });
  };
}

// followSeq follows a resumable stream (generationEvents, viewerEvents):
// field is the subscription field, vars its variables without afterSeq,
// afterSeq the last seq already seen (null: all). Each event reaches
// onEvent once, in order, across any number of reconnects.
export function followSeq(query, field, vars, afterSeq, { onEvent, error, complete } = {}) {
  let last = afterSeq;
  return subscribe(query, resumeVariables(() => (last == null ? { ...vars } : { ...vars, afterSeq: last })), {
    next(data) {
      const ev = data && data[field];
      if (!ev) return;
      if (last != null && ev.seq <= last) return;
      last = ev.seq;
      onEvent && onEvent(ev);
    },
    error,
    complete,
  });
}

// start allows the socket (call it once signed in); stop closes it and
// forgets every subscription (call it on sign-out).
export function start() {
  enabled = true;
  if (subs.size > 0) connect();
}

export function stop() {
  enabled = false;
  subs.clear();
  clearTimeout(retryTimer);
  closeSocket(1000, "signed out");
  setState("offline");
}

function socketURL() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/graphql`;
}

function connect() {
  if (!enabled || ws || subs.size === 0) return;
  clearTimeout(retryTimer);
  retryTimer = 0;
  if (!navigator.onLine) {
    setState(attempt > 0 || state === "reconnecting" ? "reconnecting" : "offline");
    return; // the online event brings us back
  }
  setState(attempt === 0 && state !== "reconnecting" ? "connecting" : "reconnecting");
  let sock;
  try {
    sock = new WebSocket(socketURL(), PROTOCOL);
  } catch {
    scheduleReconnect();
    return;
  }
  ws = sock;
  acked = false;
  sock.onopen = () => {
    if (ws !== sock) return;
    sock.send(JSON.stringify({ type: "connection_init", payload: {} }));
    ackTimer = setTimeout(() => { if (ws === sock && !acked) closeSocket(4408, "no ack"); }, ACK_TIMEOUT_MS);
  };
  sock.onmessage = (e) => { if (ws === sock) onMessage(e.data); };
  sock.onclose = (e) => { if (ws === sock) onClose(e.code, e.reason); };
  sock.onerror = () => { /* onclose follows and decides */ };
}

function onMessage(raw) {
  let msg;
  try {
    msg = JSON.parse(raw);
  } catch {
    return;
  }
  heard();
  switch (msg.type) {
    case "connection_ack":
      acked = true;
      attempt = 0;
      clearTimeout(ackTimer);
      setState("live");
      for (const [id, sub] of subs) startSub(id, sub);
      break;
    case "ping":
      send({ type: "pong", payload: msg.payload });
      break;
    case "pong":
      clearTimeout(pongTimer);
      break;
    case "next": {
      const sub = subs.get(msg.id);
      if (!sub) break;
      const p = msg.payload || {};
      if (p.errors && p.errors.length) {
        failSub(msg.id, sub, p.errors);
      } else if (sub.sink.next) {
        sub.sink.next(p.data);
      }
      break;
    }
    case "error": {
      const sub = subs.get(msg.id);
      if (sub) failSub(msg.id, sub, Array.isArray(msg.payload) ? msg.payload : [msg.payload]);
      break;
    }
    case "complete": {
      const sub = subs.get(msg.id);
      if (!sub) break;
      subs.delete(msg.id);
      sub.sink.complete && sub.sink.complete();
      break;
    }
  }
}

function failSub(id, sub, errors) {
  subs.delete(id);
  const e = errors[0] || {};
  const code = (e.extensions && e.extensions.code) || "ERROR";
  const err = new ApiError(code, e.message || "The live update stopped.", e.extensions || {});
  if (code === "UNAUTHENTICATED") {
    signedOut();
    return;
  }
  if (sub.sink.error) sub.sink.error(err);
}

function signedOut() {
  const listeners = [...signedOutListeners];
  stop();
  for (const fn of listeners) fn();
}

// heard restarts the silence watch: with no message for SILENCE_MS the
// client pings, and without a pong soon it reconnects.
function heard() {
  clearTimeout(silenceTimer);
  clearTimeout(pongTimer);
  silenceTimer = setTimeout(probe, SILENCE_MS);
}

function probe() {
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  send({ type: "ping" });
  clearTimeout(pongTimer);
  pongTimer = setTimeout(() => closeSocket(4408, "no pong"), PONG_TIMEOUT_MS);
}

function onClose(code) {
  clearTimeout(ackTimer);
  clearTimeout(silenceTimer);
  clearTimeout(pongTimer);
  ws = null;
  acked = false;
  for (const sub of subs.values()) sub.started = false;
  if (code === 4401 || code === 4403) {
    signedOut();
    return;
  }
  if (!enabled) {
    setState("offline");
    return;
  }
  scheduleReconnect();
}

function closeSocket(code, reason) {
  const sock = ws;
  if (!sock) return;
  // Treat it as closed now: a dead network may never deliver the close.
  ws = null;
  acked = false;
  try {
    sock.close(code >= 4000 || code === 1000 ? code : 1000, reason);
  } catch { /* already closed */ }
  onClose(code);
}

function scheduleReconnect() {
  setState("reconnecting");
  clearTimeout(retryTimer);
  if (subs.size === 0) return;
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  attempt++;
  // Full jitter: replicas restarting together are not hit by every
  // browser in the same instant.
  const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
  retryTimer = setTimeout(connect, delay);
}

// reconnectNow skips the backoff wait (the network is back, the tab is
// visible again) or checks a socket that looks open but may be dead.
function reconnectNow() {
  if (!enabled || subs.size === 0) return;
  if (ws && ws.readyState === WebSocket.OPEN) {
    probe();
    return;
  }
  if (ws) return; // still connecting
  attempt = Math.min(attempt, 1);
  connect();
}

addEventListener("online", reconnectNow);
addEventListener("offline", () => {
  if (enabled && ws) closeSocket(4499, "offline");
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") reconnectNow();
});
