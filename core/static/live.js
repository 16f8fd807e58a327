// A page region that refreshes itself: <div id="live" data-refresh="SECONDS">. Every SECONDS
// while the tab is visible, the same address is fetched and the region replaced by its new
// content; #live-status (role="status") says when, in the page's language.
(function () {
  "use strict";
  var region = document.getElementById("live");
  if (!region || !region.dataset.refresh) return;
  var every = Math.max(5, parseInt(region.dataset.refresh, 10)) * 1000;

  function refresh() {
    if (document.hidden) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (answer) { return answer.ok ? answer.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (!fresh) return;
        region.innerHTML = fresh.innerHTML;
        var status = document.getElementById("live-status");
        if (status) {
          var time = new Date().toLocaleTimeString(document.documentElement.lang);
          status.textContent = status.dataset.updated.replace("%(time)s", time);
        }
      })
      .catch(function () { /* the next turn tries again */ });
  }
  window.setInterval(refresh, every);
})();
