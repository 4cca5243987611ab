// Horizontal bar charts of the ranking pages: every <canvas data-ranking-chart="ID"> is drawn with the
// vendored Chart.js from <script type="application/json" id="ID"> holding:
//   {"labels": [...], "xLabel": "weight", "stacked": true | false,
//    "series": [{"label": "ctr", "data": [number, ...]}, ...]}
// One series: one bar per label (a feature's weight); several with stacked: a bar per label split
// into each series' share (a result's score split into its features' contributions).
(function () {
  "use strict";

  var PALETTE = [
    "#0b6bcb", "#e07b00", "#b3261e", "#2e7d32", "#6a4fb3", "#00838f", "#c2185b",
    "#827717", "#5d4037", "#455a64", "#f9a825", "#212121", "#9e9e9e"
  ];
  var POSITIVE = "#2e7d32", NEGATIVE = "#b3261e";

  function readSpec(id) {
    var node = document.getElementById(id);
    if (!node) return null;
    try {
      return JSON.parse(node.textContent);
    } catch (err) {
      return null;
    }
  }

  function datasets(spec) {
    if (spec.series.length === 1) {  // signed bars: green adds to the score, red takes away
      var s = spec.series[0];
      var colors = s.data.map(function (v) { return v < 0 ? NEGATIVE : POSITIVE; });
      return [{label: s.label, data: s.data, backgroundColor: colors, borderColor: colors, borderWidth: 1}];
    }
    return spec.series.map(function (s, i) {
      var color = PALETTE[i % PALETTE.length];
      return {label: s.label, data: s.data, backgroundColor: color + "cc", borderColor: color, borderWidth: 1};
    });
  }

  function draw(canvas) {
    var spec = readSpec(canvas.getAttribute("data-ranking-chart"));
    if (!spec || typeof window.Chart === "undefined") return null;
    var sets = datasets(spec);
    var stacked = !!spec.stacked;
    return new window.Chart(canvas, {
      type: "bar",
      data: {labels: spec.labels, datasets: sets},
      options: {
        indexAxis: "y", responsive: true, maintainAspectRatio: false, animation: false,
        interaction: {mode: stacked ? "index" : "nearest", axis: "y", intersect: false},
        plugins: {legend: {display: sets.length > 1, position: "bottom"}},
        scales: {
          x: {stacked: stacked, title: {display: !!spec.xLabel, text: spec.xLabel || ""}},
          y: {stacked: stacked, ticks: {autoSkip: false}}
        }
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("canvas[data-ranking-chart]").forEach(draw);
  });
})();
