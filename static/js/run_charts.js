/* Draws the run page's metric charts with uPlot; the htmx poll replaces them every 2 s. */
(function () {
  "use strict";
  const COLOURS = ["#2f5bd3", "#d3542f", "#1e7b3c", "#8a4fd3"];

  function draw(figure) {
    if (figure.dataset.drawn || !window.uPlot) return;
    figure.dataset.drawn = "1";
    const spec = JSON.parse(figure.querySelector('script[type="application/json"]').textContent);
    const keys = Object.keys(spec.series);
    const steps = [...new Set(keys.flatMap((k) => spec.series[k].map((p) => p[0])))].sort((a, b) => a - b);
    const columns = keys.map((k) => {
      const byStep = new Map(spec.series[k]);
      return steps.map((s) => (byStep.has(s) ? byStep.get(s) : null));
    });
    const width = Math.max(260, Math.min(figure.clientWidth - 24, 560));
    const options = {
      width, height: 220,
      scales: { x: { time: false } },
      axes: [{ label: "step" }, { label: spec.unit, size: 70, values: (u, ticks) => ticks.map((v) => +v.toPrecision(3)) }],
      series: [{ label: "step" }, ...keys.map((k, i) => ({ label: k, stroke: COLOURS[i % COLOURS.length], width: 2, points: { show: steps.length < 40 } }))],
    };
    new uPlot(options, [steps, ...columns], figure);
  }

  function init(root) {
    (root.matches && root.matches("[data-chart]") ? [root] : []).concat(Array.from(root.querySelectorAll("[data-chart]"))).forEach(draw);
  }
  if (window.htmx) htmx.onLoad(init); else document.addEventListener("DOMContentLoaded", () => init(document));
})();
