// Campus admin screen: live refresh and in-place form submission. No build step.
// Without JavaScript every page and form still works (plain links, GET filters, POST forms).
(function () {
  "use strict";
  const dot = document.getElementById("live-dot");

  // Re-reads the current URL and swaps the live region (and the flash) in place.
  async function refresh(response) {
    const r = response || await fetch(location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" });
    if (r.redirected && new URL(r.url).pathname === "/admin/login") { location.assign(r.url); return; }
    const doc = new DOMParser().parseFromString(await r.text(), "text/html");
    for (const id of ["live", "flash"]) {
      const fresh = doc.getElementById(id), here = document.getElementById(id);
      if (fresh && here) here.replaceWith(fresh);
    }
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
  }

  let busy = false, again = false;
  async function scheduleRefresh() {
    if (busy) { again = true; return; }
    busy = true;
    try { await refresh(); } catch (e) { /* the next change retries */ }
    busy = false;
    if (again) { again = false; scheduleRefresh(); }
  }

  if (document.getElementById("live") && window.EventSource) {
    const events = new EventSource("/admin/live");
    let lost = false;
    events.addEventListener("changed", scheduleRefresh);
    events.onopen = function () {
      if (dot) dot.className = "live-dot on";
      if (lost) { lost = false; scheduleRefresh(); }   // catch up on what was missed
    };
    events.onerror = function () { lost = true; if (dot) dot.className = "live-dot off"; };
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
