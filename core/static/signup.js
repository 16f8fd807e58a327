// The sign-up form's subdomain: while typing, ask the server whether a new clinic may take
// it (input[data-check] holds the address of the check) and say so in #subdomain-status.
(function () {
  "use strict";
  var input = document.querySelector("input[data-check]");
  var status = document.getElementById("subdomain-status");
  if (!input || !status) return;
  var timer = null;

  function check() {
    var name = input.value.trim().toLowerCase();
    if (!name) { status.textContent = ""; return; }
    var address = input.dataset.check + "?name=" + encodeURIComponent(name);
    fetch(address, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(function (found) {
        if (!found || found.subdomain !== input.value.trim().toLowerCase()) return;
        status.textContent = found.available ? status.dataset.free : found.message;
      })
      .catch(function () { status.textContent = ""; });
  }
  input.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(check, 400);
  });
})();
