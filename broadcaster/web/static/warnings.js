// The public warning page, kept current without a reload. The page works without this
// file (it is rendered by the server). Every few seconds it asks the small JSON form
// (cached on the server, usually a 304) whether the content changed; when its version
// differs, the page itself is fetched again and its <main> swapped in. The HTML is the
// server's own autoescaped rendering, parsed by DOMParser (whose scripts never run).
"use strict";
(function () {
  const body = document.body;
  const poll = body.dataset.poll;
  const every = Math.max(1, Number(body.dataset.every) || 15) * 1000;
  let version = body.dataset.version;
  let timer = null;
  let busy = false;

  const status = document.getElementById("live-status");
  const clock = () =>
    new Date().toLocaleTimeString(body.dataset.lang || "de", { hour: "2-digit", minute: "2-digit" });

  // "Stand: 23.11.2026, 10:32 Uhr", as the server writes it: the content is that fresh.
  function asOf(moment) {
    const time = document.querySelector(".as-of time");
    if (!time || isNaN(moment)) return;
    const two = (n) => String(n).padStart(2, "0");
    const text = two(moment.getDate()) + "." + two(moment.getMonth() + 1) + "." +
      moment.getFullYear() + ", " + two(moment.getHours()) + ":" + two(moment.getMinutes());
    time.textContent = body.dataset.lang === "de" ? text + " Uhr" : text;
    time.dateTime = moment.toISOString();
  }

  async function swap() {
    const response = await fetch(location.pathname + location.search, {
      cache: "no-cache",
      headers: { Accept: "text/html" },
      credentials: "omit",
    });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    const next = fresh.getElementById("warnings");
    const current = document.getElementById("warnings");
    if (!next || !current) return;
    current.replaceWith(document.importNode(next, true));
    version = fresh.body.dataset.version || version;
    body.dataset.version = version;
    document.title = fresh.title;
    if (status) status.textContent = (body.dataset.updated || "{time}").split("{time}").join(clock());
  }

  async function check() {
    if (busy) return;
    busy = true;
    try {
      const response = await fetch(poll, {
        cache: "no-cache",
        headers: { Accept: "application/json" },
        credentials: "omit",
      });
      if (response.ok) {
        const data = await response.json();
        if (data && typeof data.version === "string" && data.version !== version) await swap();
        else if (data && typeof data.generated_at === "string") asOf(new Date(data.generated_at));
      }
    } catch (error) {
      // offline for a moment: the page stays as it is, the next poll tries again
    } finally {
      busy = false;
      schedule();
    }
  }

  function schedule() {
    clearTimeout(timer);
    // A hidden tab asks less often; it asks at once when it is shown again.
    timer = setTimeout(check, document.hidden ? every * 4 : every);
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) check();
  });
  // A push just arrived (sw.js says so): the warning is there now, not at the next poll.
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.addEventListener("message", (event) => {
      if (event.data && event.data.type === "pushed" && poll) check();
    });
  }
  if (poll) schedule();
})();
