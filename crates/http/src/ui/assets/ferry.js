// ferry's dashboard: a question before a button that changes something, and live refresh of
// the parts marked data-live (every 5 s, paused while the tab is hidden). No inline code: the
// Content-Security-Policy allows only this file.
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

async function refresh() {
  if (document.hidden || !document.querySelector("[data-live]")) {
    return;
  }
  try {
    const r = await fetch(window.location.href, { credentials: "same-origin", headers: { "accept": "text/html" } });
    if (r.redirected || !r.ok) {
      return;
    }
    const fresh = new DOMParser().parseFromString(await r.text(), "text/html");
    const now = document.querySelectorAll("[data-live]");
    const next = fresh.querySelectorAll("[data-live]");
    if (now.length !== next.length) {
      return;
    }
    now.forEach((el, i) => el.replaceWith(document.importNode(next[i], true)));
  } catch (_) {
    // The server is restarting or the network is down: the next tick tries again.
  }
}

setInterval(refresh, REFRESH_MS);
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) {
    refresh();
  }
});
