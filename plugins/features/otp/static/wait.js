// The code page's "ask again" buttons: disabled, with the seconds left shown, until a new
// code may be asked for (the form's data-wait, in seconds).
"use strict";
(function () {
  var form = document.querySelector("form.again");
  if (!form) return;
  var left = Number(form.dataset.wait);
  var note = document.getElementById("wait"), buttons = form.querySelectorAll("button");
  function tick() {
    buttons.forEach(function (b) { b.disabled = left > 0; });
    note.hidden = left <= 0;
    note.querySelector("span").textContent = left;
    if (left-- > 0) setTimeout(tick, 1000);
  }
  tick();
})();
