// The Listen button of a message form: asks the server for the audio of the text as a call in
// the patient's language says it (POST, with the form's CSRF token), and plays it in the
// <audio controls> element next to it. A native <button>: the keyboard works as for any other.
"use strict";
for (const button of document.querySelectorAll("button[data-voice-preview]")) {
  const box = button.closest(".voice-listen");
  const status = box.querySelector("[role=status]");
  const player = box.querySelector("audio");
  button.addEventListener("click", async () => {
    if (button.getAttribute("aria-busy") === "true") return;
    const body = new FormData();
    body.append("text", document.getElementById(button.dataset.source).value);
    body.append("language", button.dataset.language);
    body.append("csrf_token", button.form.querySelector("input[name=csrf_token]").value);
    button.setAttribute("aria-busy", "true");
    status.textContent = button.dataset.loading;
    try {
      const response = await fetch(button.dataset.url, { method: "POST", body });
      if (!response.ok) {
        const answer = await response.json().catch(() => null);
        status.textContent = answer?.error?.message || button.dataset.failed;
        return;
      }
      if (player.src) URL.revokeObjectURL(player.src);
      player.src = URL.createObjectURL(await response.blob());
      player.hidden = false;
      status.textContent = "";
      player.play().catch(() => {}); // a browser may refuse to autoplay: the controls remain
    } catch {
      status.textContent = button.dataset.failed;
    } finally {
      button.removeAttribute("aria-busy");
    }
  });
}
