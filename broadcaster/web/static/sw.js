// The warning page's service worker (served at /warnings/sw.js, scope /warnings).
// A push is JSON from the broadcaster: title, text, tag, url, mode, kind, language.
// The notification's tag is the incident's Topic, so a later stage or a retraction of the
// same incident replaces the one on screen instead of adding a second.
"use strict";

const PAGE = "/warnings";

function samePageUrl(url) {
  // Only our own warning page is ever opened from a notification.
  try {
    const parsed = new URL(url, self.location.origin);
    if (parsed.origin === self.location.origin && parsed.pathname.startsWith(PAGE)) {
      return parsed.href;
    }
  } catch (error) {
    // fall through to the page itself
  }
  return new URL(PAGE, self.location.origin).href;
}

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let data = {};
  if (event.data) {
    try {
      data = event.data.json();
    } catch (error) {
      data = { text: event.data.text() };
    }
  }
  const live = data.mode !== "drill";
  const options = {
    body: data.text || "",
    tag: data.tag || "warning",
    renotify: true, // an update of the incident alerts again
    requireInteraction: live,
    lang: data.language || "",
    data: { url: samePageUrl(data.url || PAGE) },
  };
  event.waitUntil(
    self.registration.showNotification(data.title || "Warnung", options).then(() => tellPages(options.tag)),
  );
});

function tellPages(tag) {
  // An open warning page looks for the new warning at once, not at its next poll.
  return self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
    for (const client of windows) {
      client.postMessage({ type: "pushed", tag: tag });
    }
  });
}

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = samePageUrl((event.notification.data || {}).url || PAGE);
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
      for (const client of windows) {
        if (client.url === url && "focus" in client) {
          return client.focus();
        }
      }
      return self.clients.openWindow(url);
    }),
  );
});
