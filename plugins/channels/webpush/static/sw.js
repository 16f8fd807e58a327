/* Relais service worker: shows the clinic's notifications on this device, then tells the
   clinic that it did (the acknowledgement that counts the message as delivered). */
"use strict";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  event.waitUntil(show(event));
});

async function show(event) {
  let data = null;
  try {
    data = event.data ? event.data.json() : null;
  } catch (error) {
    data = null;
  }
  if (!data || typeof data.body !== "string") {
    return;
  }
  let status = "delivered";
  try {
    await self.registration.showNotification(data.title || "", {
      body: data.body,
      tag: data.tag, // the message id: a copy sent again replaces it, never shows twice
      data: { url: data.url || "/me/" },
    });
  } catch (error) {
    status = "undelivered"; // notifications were blocked since: the next channel takes over
  }
  if (!data.ack || !data.message_id || !data.token) {
    return;
  }
  if (new URL(data.ack).origin !== self.location.origin) {
    return; // acknowledgements go to this clinic only
  }
  try {
    await fetch(data.ack, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ message_id: data.message_id, token: data.token, status: status }),
      credentials: "omit",
      keepalive: true,
    });
  } catch (error) {
    // Offline: without the acknowledgement, the clinic sends the message another way.
  }
}

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const wanted = (event.notification.data && event.notification.data.url) || "/me/";
  const url = new URL(wanted, self.location.origin);
  if (url.origin !== self.location.origin) {
    return;
  }
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      for (const client of windows) {
        if (client.url === url.href && "focus" in client) {
          return client.focus();
        }
      }
      return self.clients.openWindow(url.href);
    })()
  );
});
