/* Live progress of training runs (annotation project page): while any run in the table is
 * unfinished, polls the table's data-runs-url (the project's training-runs API) and updates each
 * row's state, steps, loss, ETA and bar; a run that ends reloads the page, which then shows its
 * result and buttons as rendered by the server. window.pdl1Training keeps the polls seen, for tests. */
(function () {
  "use strict";
  var POLL_MS = 2000;
  var FINAL = { done: true, failed: true, cancelled: true };
  var table = document.querySelector("table.training-runs[data-runs-url]");
  var debug = (window.pdl1Training = { polls: 0, last: null });
  if (!table) { return; }

  function text(row, selector, value) {
    var el = row.querySelector(selector);
    if (el) { el.textContent = value; }
  }

  function eta(seconds) {
    if (seconds === null || seconds === undefined) { return ""; }
    var s = Math.round(seconds), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return "about " + h + ":" + String(m).padStart(2, "0") + ":" + String(s % 60).padStart(2, "0") + " left";
  }

  function unfinished() {
    return Array.prototype.filter.call(table.querySelectorAll("tr[data-run]"), function (row) {
      return row.querySelector("progress.run-bar") !== null;
    });
  }

  function poll() {
    if (!unfinished().length) { return; }
    fetch(table.dataset.runsUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (runs) {
        debug.polls += 1;
        debug.last = runs;
        var ended = false;
        runs.forEach(function (run) {
          var row = table.querySelector('tr[data-run="' + run.id + '"]');
          if (!row) { return; }
          var bar = row.querySelector("progress.run-bar");
          if (FINAL[run.status]) { ended = ended || bar !== null; return; }
          text(row, ".run-state", run.state);
          text(row, ".run-steps", run.steps_done + " / " + run.steps_total + " steps");
          if (run.loss !== null) { text(row, ".run-loss", run.loss.toFixed(3)); }
          text(row, ".run-eta", eta(run.eta_seconds));
          if (bar) { bar.value = run.steps_done; }
        });
        if (ended) { location.reload(); return; }
        setTimeout(poll, POLL_MS);
      })
      .catch(function () { setTimeout(poll, 3 * POLL_MS); });
  }
  setTimeout(poll, POLL_MS);
}());
