/* "Notifications on this device": register the service worker, subscribe to push with the
   deployment's VAPID public key, and keep the subscription at the clinic. */
"use strict";

(function () {
  const box = document.getElementById("push");
  if (!box) {
    return;
  }
  const status = document.getElementById("push-status");
  const turnOn = document.getElementById("push-on");
  const offForm = document.getElementById("push-off");
  const texts = JSON.parse(document.getElementById("push-texts").textContent);
  const scope = box.dataset.scope;

  function say(text, isError) {
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  }

  function keyBytes(base64url) {
    const padded = (base64url + "===".slice((base64url.length + 3) % 4))
      .replace(/-/g, "+")
      .replace(/_/g, "/");
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  }

  async function registration() {
    await navigator.serviceWorker.register(box.dataset.worker, { scope: scope });
    return navigator.serviceWorker.ready;
  }

  async function subscribe() {
    if (!box.dataset.key) {
      say(texts.no_key, true);
      return;
    }
    turnOn.disabled = true;
    try {
      const permission = await Notification.requestPermission();
      if (permission !== "granted") {
        say(texts.denied, true);
        return;
      }
      const ready = await registration();
      let subscription;
      try {
        subscription = await ready.pushManager.subscribe({
          userVisibleOnly: true,
          applicationServerKey: keyBytes(box.dataset.key),
        });
      } catch (error) {
        say(texts.unreachable, true);
        return;
      }
      const answer = await fetch(box.dataset.subscribe, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": box.dataset.csrf },
        body: JSON.stringify(subscription.toJSON()),
        credentials: "same-origin",
      });
      if (!answer.ok) {
        const body = await answer.json().catch(() => ({}));
        await subscription.unsubscribe();
        say((body.error && body.error.message) || texts.failed, true);
        return;
      }
      window.location.assign(box.dataset.done);
    } catch (error) {
      say(texts.failed, true);
    } finally {
      turnOn.disabled = false;
    }
  }

  async function unsubscribe(event) {
    event.preventDefault();
    try {
      const found = await navigator.serviceWorker.getRegistration(scope);
      const subscription = found && (await found.pushManager.getSubscription());
      if (subscription) {
        await subscription.unsubscribe();
      }
    } catch (error) {
      // The clinic forgets the device anyway: it receives nothing more.
    }
    offForm.submit();
  }

  async function start() {
    if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
      turnOn.disabled = true;
      say(texts.unsupported, true);
      return;
    }
    offForm.addEventListener("submit", unsubscribe);
    turnOn.addEventListener("click", subscribe);
    if (Notification.permission === "denied") {
      say(texts.denied, true);
    }
    try {
      const ready = await registration();
      box.dataset.ready = "true";
      const subscription = await ready.pushManager.getSubscription();
      if (Notification.permission !== "denied") {
        say(subscription ? texts.on_here : texts.off_here, false);
      }
    } catch (error) {
      say(texts.unsupported, true);
    }
  }

  start();
})();
