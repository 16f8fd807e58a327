// The reminder template editor: a button per variable inserts it at the cursor, and the
// preview follows what is typed (the server renders it, as it will render the reminders).
// Without this script, the variables are listed and "Show the preview" renders it.
(() => {
  const form = document.querySelector("textarea[data-language]")?.form;
  const preview = document.querySelector("[data-preview]");
  if (!form || !preview) return;

  const show = (id, text) => {
    document.getElementById(id).textContent = text;
  };
  let pending = null;
  const refresh = async (textarea) => {
    const data = new FormData(form);
    data.set("action", "preview");
    data.set("language", textarea.dataset.language);
    const answer = await fetch(window.location.pathname, {
      method: "POST",
      body: data,
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    const body = await answer.json();
    const select = preview.querySelector("select[name=language]");
    if (select) select.value = textarea.dataset.language;
    if (!answer.ok) {
      show("preview-error", body.error.message);
      return;
    }
    show("preview-error", "");
    show("preview-sms-count", body.sms_summary);
    show("preview-sms", body.sms.text);
    show("preview-email-subject", body.email.subject);
    show("preview-email", body.email.text);
    show("preview-voice", body.voice.text);
  };
  const later = (textarea) => {
    clearTimeout(pending);
    pending = setTimeout(() => refresh(textarea), 300);
  };

  form.querySelectorAll("textarea[data-language]").forEach((textarea) => {
    textarea.addEventListener("input", () => later(textarea));
    textarea.addEventListener("focus", () => later(textarea));
  });
  form.querySelectorAll(".inserts").forEach((group) => {
    group.hidden = false;
    const textarea = document.getElementById(group.dataset.for);
    group.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-insert]");
      if (!button) return;
      const text = button.dataset.insert;
      const { selectionStart: start, selectionEnd: end, value } = textarea;
      textarea.value = value.slice(0, start) + text + value.slice(end);
      textarea.focus();
      textarea.setSelectionRange(start + text.length, start + text.length);
      later(textarea);
    });
  });
})();
