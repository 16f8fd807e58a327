// The Settings menu (a <details> disclosure) closes with Escape, giving the focus back to its
// button, and when the focus or a click goes elsewhere. Without this script it still opens
// and closes by click, Enter or Space.
document.querySelectorAll("details[data-menu]").forEach((menu) => {
  const summary = menu.querySelector("summary");
  menu.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && menu.open) {
      menu.open = false;
      summary.focus();
    }
  });
  menu.addEventListener("focusout", (event) => {
    if (event.relatedTarget && !menu.contains(event.relatedTarget)) menu.open = false;
  });
  document.addEventListener("click", (event) => {
    if (!menu.contains(event.target)) menu.open = false;
  });
});
