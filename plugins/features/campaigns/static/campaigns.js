// Campaigns' pages: the draft form's live count, the campaign page's progress bar, the
// operator's per-clinic progress bars of a country-wide campaign.
// A static file (the pages' CSP allows no inline script); without it the pages still work.
(function () {
  "use strict";

  function format(template, values) {
    return template.replace(/%\((\w+)\)s/g, function (_, name) {
      return String(values[name]);
    });
  }

  // --- the live count of the draft form ---
  var form = document.getElementById("campaign-form");
  if (form) {
    var total = document.getElementById("count-total");
    var table = document.getElementById("count-table");
    var names = JSON.parse(table.getAttribute("data-channel-names") || "{}");
    var timer = null;
    var count = function () {
      var params = new URLSearchParams();
      new FormData(form).forEach(function (value, key) {
        if (key !== "csrf_token" && key.indexOf("template_") !== 0) params.append(key, value);
      });
      fetch(form.dataset.countUrl + "?" + params.toString(), {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      })
        .then(function (response) { return response.json(); })
        .then(function (body) {
          if (body.error) {
            total.textContent = body.error.message;
            table.hidden = true;
            return;
          }
          total.textContent = format(total.dataset.template, body);
          var rows = table.tBodies[0];
          rows.textContent = "";
          Object.keys(body.channels).forEach(function (channel) {
            var row = rows.insertRow();
            var head = document.createElement("th");
            head.scope = "row";
            head.textContent = names[channel] || channel;
            row.appendChild(head);
            var figures = body.channels[channel];
            ["reachable", "no_address", "opted_out", "no_consent"].forEach(function (key) {
              row.insertCell().textContent = figures[key];
            });
          });
          table.hidden = false;
        })
        .catch(function () {});
    };
    form.addEventListener("input", function (event) {
      if (event.target.name && event.target.name.indexOf("template_") === 0) return;
      clearTimeout(timer);
      timer = setTimeout(count, 300);
    });
    count();
  }

  // --- the progress bar, polled until the campaign is over ---
  var progress = document.getElementById("progress");
  if (progress) {
    var bar = document.getElementById("progress-bar");
    var text = document.getElementById("progress-text");
    var state = document.getElementById("campaign-state");
    var states = JSON.parse(state.dataset.states);
    var poll = function () {
      fetch(progress.dataset.url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) { return response.json(); })
        .then(function (body) {
          bar.max = body.total || 1;
          bar.value = body.finished;
          bar.textContent = body.finished;
          text.textContent = format(text.dataset.template, {
            finished: body.finished, total: body.total || 0, written: body.written,
          });
          Object.keys(body.figures).forEach(function (key) {
            var cell = document.getElementById("figure-" + key);
            if (cell) cell.textContent = body.figures[key];
          });
          state.textContent = states[body.state] || body.state;
          var settled = body.total !== null && body.finished >= body.total;
          if (!((body.state === "done" || body.state === "cancelled") && settled)) {
            setTimeout(poll, 2000);
          }
        })
        .catch(function () { setTimeout(poll, 5000); });
    };
    setTimeout(poll, 1000);
  }

  // --- the operator's per-clinic bars of a country-wide campaign, polled until all are over ---
  var country = document.getElementById("country-progress");
  if (country) {
    var names = JSON.parse(country.dataset.states);
    var written = document.getElementById("written-template").dataset.template;
    var number = new Intl.NumberFormat(document.documentElement.lang || undefined);
    var pollCountry = function () {
      fetch(country.dataset.url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) { return response.json(); })
        .then(function (body) {
          var going = false;
          Object.keys(body).forEach(function (slug) {
            var row = document.getElementById("clinic-" + slug);
            if (!row) return;
            var shown = body[slug];
            var cell = function (name) { return row.querySelector('[data-figure="' + name + '"]'); };
            var bar = cell("bar");
            bar.max = shown.expected || 1;
            bar.value = shown.written;
            bar.textContent = shown.written;
            cell("written").textContent = format(written, {
              written: number.format(shown.written), total: number.format(shown.expected),
            });
            cell("state").textContent = names[shown.state] || shown.state;
            Object.keys(shown.figures).forEach(function (key) {
              var figure = cell(key);
              if (figure) figure.textContent = number.format(shown.figures[key]);
            });
            if (shown.state === "running" || shown.state === "scheduled") going = true;
          });
          if (going) setTimeout(pollCountry, 2000);
        })
        .catch(function () { setTimeout(pollCountry, 5000); });
    };
    setTimeout(pollCountry, 1000);
  }
})();
