// Draws every <canvas data-chart="ID"> with the vendored Chart.js (static/vendor/chart.umd.min.js).
// The data comes from <script type="application/json" id="ID"> holding:
//   {"type": "line" | "bar", "labels": [...], "yLabel": "ms",
//    "series": [{"label": "p50", "data": [number | null, ...]}, ...]}
// A page that wants charts includes chart.umd.min.js and this file (both with defer) in its scripts block.
(function () {
  "use strict";

  var PALETTE = ["#0b6bcb", "#e07b00", "#b3261e", "#2e7d32", "#6a4fb3", "#00838f"];

  function readSpec(id) {
    var node = document.getElementById(id);
    if (!node) return null;
    try {
      return JSON.parse(node.textContent);
    } catch (err) {
      return null;
    }
  }

  function draw(canvas) {
    var spec = readSpec(canvas.getAttribute("data-chart"));
    if (!spec || typeof window.Chart === "undefined") return null;
    var datasets = spec.series.map(function (s, i) {
      var color = s.color || PALETTE[i % PALETTE.length];
      return {
        label: s.label, data: s.data, borderColor: color, backgroundColor: spec.type === "bar" ? color + "99" : color,
        borderWidth: 2, pointRadius: 2, spanGaps: false, tension: 0.2
      };
    });
    return new window.Chart(canvas, {
      type: spec.type || "line",
      data: {labels: spec.labels, datasets: datasets},
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        interaction: {mode: "index", intersect: false},
        plugins: {legend: {display: datasets.length > 1, position: "bottom"}},
        scales: {y: {beginAtZero: true, title: {display: !!spec.yLabel, text: spec.yLabel || ""}}}
      }
    });
  }

  window.kairosCharts = {draw: draw};  // for pages that add canvases later
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("canvas[data-chart]").forEach(draw);
  });
})();
