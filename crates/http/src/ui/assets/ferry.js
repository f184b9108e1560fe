// ferry's dashboard: a question before a button that changes something, and live refresh of
// the parts marked data-live: pushed by the server (server-sent events) when the page changed,
// polled every 5 s when no stream can be had, neither while the tab is hidden. No inline code:
// the Content-Security-Policy allows only this file.
"use strict";

// The theme: the system's unless chosen by hand (kept in this browser).
const THEMES = ["system", "light", "dark"];
function applyTheme(theme) {
  if (theme === "light" || theme === "dark") {
    document.documentElement.dataset.theme = theme;
  } else {
    delete document.documentElement.dataset.theme;
  }
  const button = document.querySelector("button.theme");
  if (button) {
    button.textContent = "Theme: " + theme;
  }
}
let theme = localStorage.getItem("ferry-theme") || "system";
applyTheme(theme);
document.addEventListener("click", (e) => {
  if (e.target instanceof HTMLElement && e.target.matches("button.theme")) {
    theme = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
    localStorage.setItem("ferry-theme", theme);
    applyTheme(theme);
  }
});

document.addEventListener("submit", (e) => {
  const button = e.submitter;
  const question = button && button.dataset.confirm;
  if (question && !window.confirm(question)) {
    e.preventDefault();
  }
});

const REFRESH_MS = 5000;
const RETRY_STREAM_MS = 30000;

// Swaps the live parts of the page for those of `html` (a whole page). A part the person is
// working in (a ticked box, a focused field) is left as it is.
function swap(html) {
  const fresh = new DOMParser().parseFromString(html, "text/html");
  const now = document.querySelectorAll("[data-live]");
  const next = fresh.querySelectorAll("[data-live]");
  if (now.length !== next.length) {
    return;
  }
  now.forEach((el, i) => {
    const busy = el.querySelector("input:checked") || el.contains(document.activeElement);
    if (!busy) {
      el.replaceWith(document.importNode(next[i], true));
    }
  });
}

async function refresh() {
  if (document.hidden || !document.querySelector("[data-live]")) {
    return;
  }
  try {
    const r = await fetch(window.location.href, { credentials: "same-origin", headers: { "accept": "text/html" } });
    if (r.redirected || !r.ok) {
      return;
    }
    swap(await r.text());
  } catch (_) {
    // The server is restarting or the network is down: the next tick tries again.
  }
}

let stream = null;
let poller = null;

function stopLive() {
  if (stream) {
    stream.close();
    stream = null;
  }
  if (poller) {
    clearInterval(poller);
    poller = null;
  }
}

// Polls, and tries a stream again after a while (a stream ends every few minutes by design,
// or could not be opened).
function fallBack() {
  stopLive();
  poller = setInterval(refresh, REFRESH_MS);
  setTimeout(() => {
    if (!document.hidden && poller) {
      startLive();
    }
  }, RETRY_STREAM_MS);
}

function startLive() {
  stopLive();
  if (document.hidden || !document.querySelector("[data-live]")) {
    return;
  }
  if (!window.EventSource) {
    poller = setInterval(refresh, REFRESH_MS);
    return;
  }
  const path = window.location.pathname + window.location.search;
  stream = new EventSource("/ui/live?path=" + encodeURIComponent(path));
  stream.addEventListener("page", (e) => swap(e.data));
  stream.onerror = fallBack;
}

startLive();
document.addEventListener("visibilitychange", () => {
  if (document.hidden) {
    stopLive();
  } else {
    refresh();
    startLive();
  }
});
