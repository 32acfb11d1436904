// The duty officer's page: the second tap, the countdowns and the live delivery states.
// The page works without this file (a required checkbox is then the second step). Nothing
// from the server is ever inserted as HTML: only textContent, and links that are http(s).
"use strict";
(function () {
  const body = document.body;
  const view = body.dataset.view;
  let T = {};
  try {
    T = JSON.parse(document.getElementById("texts").textContent);
  } catch (error) {
    // without texts the keys themselves are shown; the page still works
  }
  const tr = (key, vars) => {
    let text = T[key] || key;
    for (const [name, value] of Object.entries(vars || {})) {
      text = text.split("{" + name + "}").join(String(value));
    }
    return text;
  };
  const byTest = (id) => document.querySelector('[data-testid="' + CSS.escape(id) + '"]');
  const mmss = (s) => Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  // A GET of the page itself: never location.reload(), which would repeat a POST.
  const reload = () => location.replace(location.pathname);

  // --- Two steps: the first tap opens "Yes, ...", the checkbox is ticked for it ----------
  for (const form of document.querySelectorAll("form[data-twostep]")) {
    const check = form.querySelector("[data-check]");
    if (check) {
      check.querySelector("input").checked = true;
      check.hidden = true;
    }
    const choices = form.querySelector("[data-choices]");
    const reason = form.querySelector("[data-reason]");
    const slot = form.querySelector("[data-reason-slot]");
    if (reason && slot) slot.append(reason); // the optional reject reason goes with "reject"
    for (const opener of form.querySelectorAll("[data-open]")) {
      opener.type = "button";
      opener.addEventListener("click", () => {
        if (!form.reportValidity()) return;
        const step = form.querySelector('[data-step="' + opener.dataset.open + '"]');
        choices.hidden = true;
        step.hidden = false;
        step.querySelector("[data-final]").focus();
      });
    }
    for (const back of form.querySelectorAll("[data-back]")) {
      back.addEventListener("click", () => {
        const step = back.closest("[data-step]");
        step.hidden = true;
        choices.hidden = false;
        form.querySelector('[data-open="' + step.dataset.step + '"]').focus();
      });
    }
    form.addEventListener("submit", (event) => {
      // Only the visible "Yes, ..." button may submit: Enter in the PIN field must not.
      const by = event.submitter;
      if ("submitter" in event && (!by || !by.hasAttribute("data-final") || by.closest("[hidden]"))) {
        event.preventDefault();
      }
    });
  }

  // Every form is sent once; a second tap while the page loads does nothing.
  for (const form of document.querySelectorAll("form")) {
    form.addEventListener("submit", (event) => {
      if (event.defaultPrevented) return;
      if (form.dataset.sent) {
        event.preventDefault();
        return;
      }
      form.dataset.sent = "1";
      const by = event.submitter;
      setTimeout(() => {
        // after the submission has read the button's name and value
        for (const button of form.querySelectorAll("button")) button.disabled = true;
        if (by) by.textContent = T.submitting || "…";
      }, 0);
    });
  }

  // A wrong PIN is marked until it is typed again.
  for (const input of document.querySelectorAll("input[aria-invalid]")) {
    input.addEventListener("input", () => input.removeAttribute("aria-invalid"), { once: true });
  }

  // A reason is one line (the server refuses line breaks).
  for (const area of document.querySelectorAll("textarea[name=reason]")) {
    area.addEventListener("keydown", (event) => {
      if (event.key === "Enter") event.preventDefault();
    });
    area.addEventListener("input", () => {
      if (/[\r\n]/.test(area.value)) area.value = area.value.replace(/[\r\n]+/g, " ");
    });
  }

  // --- The link's expiry, while undecided ---------------------------------------------
  const expiry = byTest("expiry");
  if (expiry) {
    const end = Date.now() + Number(body.dataset.expiresIn || 0) * 1000;
    const tick = () => {
      const left = Math.max(0, Math.ceil((end - Date.now()) / 1000));
      if (left > 0) {
        expiry.textContent = tr("expires_in", { time: mmss(left) });
        setTimeout(tick, 1000);
        return;
      }
      expiry.textContent = tr("expired_now");
      expiry.parentElement.classList.add("over");
      for (const button of document.querySelectorAll("#decision button")) button.disabled = true;
      setTimeout(reload, 1500);
    };
    tick();
  }

  // --- The state endpoint --------------------------------------------------------------
  const fetchState = async () => {
    try {
      const response = await fetch(body.dataset.stateUrl, {
        cache: "no-store",
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (response.status === 404 || response.status === 410) return "gone";
      return response.ok ? await response.json() : null;
    } catch (error) {
      return null; // a phone losing its connection for a moment: try again
    }
  };

  const FINAL = new Set(["delivered", "failed", "dry_run", "retracted"]);
  const showDelivery = (badge, d) => {
    const key = JSON.stringify(d);
    if (badge.dataset.last === key) return; // do not rebuild a link the officer may be tapping
    badge.dataset.last = key;
    badge.dataset.state = d.state;
    badge.textContent = tr("delivery_" + d.state);
    if (d.attempts > 1) badge.append(" (" + tr("attempts", { n: d.attempts }) + ")");
    if (d.state === "delivered" && d.url && /^https?:\/\//i.test(d.url)) {
      const link = document.createElement("a");
      link.href = d.url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      link.textContent = tr("open_post") + " ↗";
      badge.append(" ", link);
    }
    if (d.state === "failed" && d.error) {
      const error = document.createElement("span");
      error.className = "err";
      error.textContent = d.error;
      badge.append(error);
    }
  };

  const showDeliveries = (deliveries) => {
    const all = Object.entries(deliveries || {});
    for (const [channel, d] of all) {
      const badge = byTest("delivery-" + channel);
      if (badge) showDelivery(badge, d);
      const line = document.querySelector('[data-overview="' + CSS.escape(channel) + '"]');
      if (line) {
        line.dataset.state = d.state;
        line.textContent = tr("delivery_" + d.state);
      }
    }
    const summary = byTest("delivery-summary");
    if (summary && all.length) {
      const done = all.filter(([, d]) => FINAL.has(d.state)).length;
      const failed = all.filter(([, d]) => d.state === "failed").length;
      summary.textContent = "· " + tr("delivery_summary", { done: done, n: all.length }) +
        (failed ? " · " + tr("delivery_failed_count", { n: failed }) : "");
    }
    return all.every(([, d]) => FINAL.has(d.state));
  };

  // --- pending_release: count down to the release, with the big STOP button ------------
  const countdown = byTest("countdown");
  if (view === "pending_release" && countdown) {
    const at = Date.parse(body.dataset.releaseAt);
    const undo = Number(body.dataset.undoSeconds || 0) * 1000;
    const label = document.querySelector("[data-pending-label]");
    let end = Number.isNaN(at) ? Date.now() + undo : Math.min(at, Date.now() + undo);
    const tick = () => {
      const left = Math.max(0, Math.ceil((end - Date.now()) / 1000));
      countdown.textContent = String(left);
      label.textContent = tr(left > 0 ? "pending_heading" : "sending_now");
      byTest("undo").hidden = left === 0; // too late to stop: the server would refuse
      setTimeout(tick, 250);
    };
    const poll = async () => {
      const s = await fetchState();
      if (s === "gone") return reload();
      if (s) {
        if (s.state !== "awaiting_confirmation" || !s.release_at) return reload();
        if (typeof s.seconds_to_release === "number") end = Date.now() + s.seconds_to_release * 1000;
        showDeliveries(s.deliveries);
      }
      setTimeout(poll, 1000);
    };
    tick();
    poll();
  }

  // --- released: the deliveries as they happen ----------------------------------------
  if (view === "released") {
    const label = byTest("alert-state");
    const retracted = body.dataset.alertState === "retracted";
    const poll = async () => {
      const s = await fetchState();
      if (s === "gone") return;
      let settled = false;
      if (s) {
        if ((s.state === "retracted") !== retracted) return reload();
        if (label) {
          label.dataset.state = s.state;
          label.textContent = tr("alert_" + s.state);
        }
        settled = showDeliveries(s.deliveries) && s.state !== "sending";
      }
      setTimeout(poll, settled ? 5000 : 1000);
    };
    poll();
  }

  // --- decide: say so when the alert was decided elsewhere (another officer, tab) ------
  const stale = byTest("stale");
  if (view === "decide" && stale) {
    const poll = async () => {
      const s = await fetchState();
      if (s && s !== "gone" && (s.state !== "awaiting_confirmation" || s.release_at)) {
        stale.hidden = false;
        return;
      }
      setTimeout(poll, 5000);
    };
    setTimeout(poll, 5000);
  }
})();
