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
    setText(root, "started_at", job.started_at || "–");
    setText(root, "finished_at", job.finished_at || "–");
    setText(root, "result", Object.keys(job.result || {}).length ? JSON.stringify(job.result, null, 2) : "–");
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
