// Live job progress: polls the job's JSON (data-poll-url) every 2 s until it is done,
// and fills the elements marked data-field="...". No inline script (CSP).
(function () {
  "use strict";

  var INTERVAL_MS = 2000;

  function field(root, name) {
    return root.querySelector('[data-field="' + name + '"]');
  }

  function setText(root, name, text) {
    var el = field(root, name);
    if (el) el.textContent = text;
  }

  function render(root, job) {
    var status = field(root, "status");
    if (status) {
      status.textContent = job.status;
      status.className = "badge st-" + job.status;
    }
    var bar = field(root, "progress");
    if (bar) bar.value = job.progress;
    setText(root, "percent", (100 * job.progress).toFixed(1) + "%");
    setText(root, "message", job.message || "");
    var error = field(root, "error");
    if (error) {
      error.textContent = job.error || "";
      error.hidden = !job.error;
    }
    setText(root, "started_at", (job.started_at || "–").replace("T", " ").replace("Z", ""));
    setText(root, "finished_at", (job.finished_at || "–").replace("T", " ").replace("Z", ""));
    setText(root, "result", Object.keys(job.result || {}).length ? JSON.stringify(job.result, null, 2) : "–");
    var rows = field(root, "result_rows");
    if (rows) {
      rows.textContent = "";
      (job.result_rows || []).forEach(function (pair) {
        var tr = document.createElement("tr");
        var th = document.createElement("th");
        th.scope = "row";
        th.textContent = pair[0];
        var td = document.createElement("td");
        td.textContent = pair[1];
        tr.appendChild(th);
        tr.appendChild(td);
        rows.appendChild(tr);
      });
    }
    setText(root, "logs", job.logs && job.logs.length ? job.logs.join("\n") : "–");
    setText(root, "live", job.done ? "" : "updating live");
  }

  function poll(root) {
    fetch(root.getAttribute("data-poll-url"), {headers: {Accept: "application/json"}, credentials: "same-origin"})
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (job) {
        render(root, job);
        if (!job.done) window.setTimeout(function () { poll(root); }, INTERVAL_MS);
        // Ended while watched: the server's page says what next (activate, what a refusal needs).
        else window.location.reload();
      })
      .catch(function () {
        setText(root, "live", "connection lost; retrying");
        window.setTimeout(function () { poll(root); }, INTERVAL_MS * 3);
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.querySelector("[data-poll-url]");
    if (root && root.getAttribute("data-done") !== "true") window.setTimeout(function () { poll(root); }, INTERVAL_MS);
  });
})();
