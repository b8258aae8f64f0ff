// Campus admin screen: live refresh and in-place form submission. No build step.
// Without JavaScript every page and form still works (plain links, GET filters, POST forms).
(function () {
  "use strict";
  const dot = document.getElementById("live-dot");

  // Re-reads the current URL and swaps the live region (and the flash) in place.
  async function refresh(response) {
    const url = location.href;
    const r = response || await fetch(url, { headers: { Accept: "text/html" }, credentials: "same-origin" });
    if (r.redirected && new URL(r.url).pathname === "/admin/login") { location.assign(r.url); return; }
    const html = await r.text();
    // A form's answer moved the page on (and said what it did) while this read was under
    // way: read the new page instead of putting the old one back.
    if (!response && url !== location.href) { again = true; return; }
    const doc = new DOMParser().parseFromString(html, "text/html");
    for (const id of ["live", "flash"]) {
      const fresh = doc.getElementById(id), here = document.getElementById(id);
      if (fresh && here) here.replaceWith(fresh);
    }
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
  }

  // A change re-reads the page at most once per interval that grows with what the page
  // costs (twice its last load, from half a second up to five), never while the tab is
  // hidden, and never by itself for text searches: those walk the table, so they run when
  // asked.
  let busy = false, again = false, cost = 0, last = 0;
  async function scheduleRefresh() {
    if (busy || document.hidden) { again = true; return; }
    const wait = last + Math.min(5000, Math.max(500, 2 * cost)) - Date.now();
    if (wait > 0) { busy = true; setTimeout(function () { busy = false; scheduleRefresh(); }, wait); return; }
    busy = true;
    const started = Date.now();
    try { await refresh(); } catch (e) { /* the next change retries */ }
    last = Date.now();
    cost = last - started;
    busy = false;
    if (again) { again = false; scheduleRefresh(); }
  }
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && again) { again = false; scheduleRefresh(); }
  });

  const params = new URLSearchParams(location.search);
  const searching = params.get("q") || params.get("correlation_id");
  if (searching && dot) {
    dot.className = "live-dot off";
    dot.title = "live updates pause during text searches; reload to search again";
  }
  if (document.getElementById("live") && window.EventSource && !searching) {
    let events = null, lost = false;
    function connect() {
      // The version the page was rendered at: a change since then refreshes it at once.
      const since = document.body.dataset.liveVersion;
      events = new EventSource("/admin/live" + (since ? "?since=" + since : ""));
      events.addEventListener("changed", scheduleRefresh);
      events.onopen = function () {
        if (dot) dot.className = "live-dot on";
        if (lost) { lost = false; scheduleRefresh(); }   // catch up on what was missed
      };
      events.onerror = function () { lost = true; if (dot) dot.className = "live-dot off"; };
    }
    connect();
    // A page left for another may be kept (back/forward cache) with its stream open, and a
    // browser opens only a few connections per server: close it on leaving, reopen on return.
    window.addEventListener("pagehide", function () { events.close(); lost = true; });
    window.addEventListener("pageshow", function (e) { if (e.persisted) connect(); });
  }

  // Forms marked data-async are posted in the background; the page updates in place.
  document.addEventListener("submit", async function (e) {
    const form = e.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-async")) return;
    e.preventDefault();
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      const r = await fetch(form.action, {
        method: "POST", body: new URLSearchParams(new FormData(form)),
        headers: { Accept: "text/html" }, credentials: "same-origin",
      });
      if (r.url && r.url !== location.href && r.ok) history.replaceState(null, "", r.url);
      await refresh(r);
    } finally {
      if (button) button.disabled = false;
    }
  });
})();
