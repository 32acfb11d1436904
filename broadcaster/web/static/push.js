// The warning page's "Get warnings as push notifications" button (push_subscribe.html).
// No inline script: the page's Content-Security-Policy allows only scripts from 'self'.
"use strict";

(function () {
  const box = document.getElementById("push");
  if (!box) {
    return;
  }
  const on = document.getElementById("push-subscribe");
  const off = document.getElementById("push-unsubscribe");
  const status = document.getElementById("push-status");
  const say = (key) => {
    status.textContent = box.dataset["text" + key.charAt(0).toUpperCase() + key.slice(1)] || "";
  };
  const showSubscribed = (yes) => {
    on.hidden = yes;
    off.hidden = !yes;
  };

  box.hidden = false;
  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
    on.hidden = true;
    off.hidden = true;
    say("unsupported");
    return;
  }

  function keyBytes(base64url) {
    const padded = base64url.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((base64url.length + 3) % 4);
    const raw = atob(padded);
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  function sameKey(subscription, key) {
    const bound = subscription.options && subscription.options.applicationServerKey;
    if (!bound) {
      return true; // the browser does not tell: keep it
    }
    const a = new Uint8Array(bound);
    return a.length === key.length && a.every((byte, i) => byte === key[i]);
  }

  const pause = (seconds) => new Promise((done) => setTimeout(done, seconds * 1000));

  async function send(method, body) {
    for (let attempt = 0; ; attempt += 1) {
      const answer = await fetch(box.dataset.subscriptionsUrl, {
        method: method,
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        credentials: "same-origin",
      });
      if (answer.status === 429 && attempt < 5) {
        // Many people subscribing at once: the server asks to come back shortly.
        await pause(Number(answer.headers.get("Retry-After")) || 1 + attempt);
        continue;
      }
      if (!answer.ok && !(method === "DELETE" && answer.status === 404)) {
        throw new Error("HTTP " + answer.status);
      }
      return;
    }
  }

  const registering = navigator.serviceWorker.register(box.dataset.workerUrl, {
    scope: box.dataset.scope,
  });

  registering
    .then((registration) => registration.pushManager.getSubscription())
    .then((subscription) => showSubscribed(Boolean(subscription) && Notification.permission === "granted"))
    .catch(() => showSubscribed(false));

  on.addEventListener("click", async () => {
    on.disabled = true;
    say("working");
    try {
      const answer = await fetch(box.dataset.keyUrl, { credentials: "same-origin" });
      if (!answer.ok) {
        throw new Error("HTTP " + answer.status);
      }
      const key = keyBytes((await answer.json()).key);
      const registration = await registering;
      let subscription = await registration.pushManager.getSubscription();
      if (subscription && !sameKey(subscription, key)) {
        await subscription.unsubscribe(); // made with an older key: it would be refused
        subscription = null;
      }
      if (!subscription) {
        subscription = await registration.pushManager.subscribe({
          userVisibleOnly: true,
          applicationServerKey: key,
        });
      }
      const body = subscription.toJSON();
      body.language = box.dataset.language;
      body.drill = box.dataset.drill === "true";
      await send("POST", body);
      showSubscribed(true);
      say("subscribed");
    } catch (error) {
      say(Notification.permission === "denied" ? "denied" : "failed");
    } finally {
      on.disabled = false;
    }
  });

  off.addEventListener("click", async () => {
    off.disabled = true;
    say("working");
    try {
      const registration = await registering;
      const subscription = await registration.pushManager.getSubscription();
      if (subscription) {
        await send("DELETE", { endpoint: subscription.endpoint });
        await subscription.unsubscribe();
      }
      showSubscribed(false);
      say("unsubscribed");
    } catch (error) {
      say("failed");
    } finally {
      off.disabled = false;
    }
  });
})();
