/* Draws metric charts with uPlot from a JSON spec beside each [data-chart] figure: the run page
   (the htmx poll replaces its charts every 2 s) and the project dashboard.
   Spec: title, unit (y-axis label), x_label, x ("number" | "time" | "category" with categories),
   series {name: [[x, y], ...]}, styles {name: "line" | "bars" | "points"}, lines [{label, y}]
   (dashed horizontal reference lines, named in the legend), intervals {name: [[x, low, high], ...]}
   (whiskers), y_range, percent. Bar charts start their y axis at 0. */
(function () {
  "use strict";
  const COLOURS = ["#2f5bd3", "#d3542f", "#1e7b3c", "#8a4fd3", "#b8860b", "#0e8a8a", "#c2185b", "#5b6475"];
  const REFERENCES = ["#6b7280", "#b3261e", "#111827"];
  const DASH = [6, 4];
  const DAY = 86400;  // time axes are in seconds; a day's bar gets half a day of room each side

  function xValues(spec, keys) {
    return [...new Set(keys.flatMap((k) => spec.series[k].map((p) => p[0])))].sort((a, b) => a - b);
  }

  function tickFormat(spec) {
    if (spec.percent) return (u, ticks) => ticks.map((v) => Math.round(v * 100) + "%");
    return (u, ticks) => ticks.map((v) => +v.toPrecision(3));
  }

  function xAxis(spec) {
    const axis = { label: spec.x_label || "step" };
    if (spec.x === "time") axis.incrs = [1, 2, 7, 14, 30, 91, 365].map((days) => days * DAY);  // whole days
    if (spec.x === "category") {
      axis.splits = () => spec.categories.map((_, i) => i);
      axis.values = (u, splits) => splits.map((i) => spec.categories[i] ?? "");
      axis.grid = { show: false };
    }
    return axis;
  }

  function xScale(spec, xs) {
    // A fixed range: uPlot's own range for a single time point spans years.
    if (spec.x === "time") return { time: true, range: [xs[0] - DAY / 2, xs[xs.length - 1] + DAY / 2] };
    if (spec.x === "category") return { time: false, range: () => [-0.5, spec.categories.length - 0.5] };
    return { time: false };
  }

  function seriesOption(spec, key, i, count) {
    const colour = COLOURS[i % COLOURS.length];
    const style = (spec.styles || {})[key] || "line";
    const option = { label: key, stroke: colour, width: 2, points: { show: count < 40, size: 7 } };
    if (style === "bars") {
      Object.assign(option, { fill: colour + "99", width: 1, paths: uPlot.paths.bars({ size: [0.6, 64] }), points: { show: false } });
    } else if (style === "points") {
      Object.assign(option, { paths: () => null, points: { show: true, size: 10, width: 2, fill: colour } });
    }
    if (spec.percent) option.value = (u, v) => (v == null ? "–" : (v * 100).toFixed(1) + "%");
    return option;
  }

  /* A reference line is a legend entry (this series, drawing nothing itself) and a dashed line
     across the whole plot (drawExtras), so it shows even over a single category. */
  function referenceOption(line, i) {
    return { label: line.label, stroke: REFERENCES[i % REFERENCES.length], width: 1.5, dash: DASH, paths: () => null, points: { show: false } };
  }

  function yScale(spec, keys) {
    if (spec.y_range) return { range: spec.y_range };
    const bars = keys.some((k) => (spec.styles || {})[k] === "bars");
    return bars ? { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } : {};
  }

  /* Reference lines across the plot, and whiskers for intervals. */
  function drawExtras(spec, keys) {
    return (u) => {
      const ctx = u.ctx;
      const { left, top, width, height } = u.bbox;
      ctx.save();
      ctx.beginPath();
      ctx.rect(left, top, width, height);
      ctx.clip();
      (spec.lines || []).forEach((line, i) => {
        const y = u.valToPos(line.y, "y", true);
        ctx.strokeStyle = REFERENCES[i % REFERENCES.length];
        ctx.lineWidth = 1.5 * devicePixelRatio;
        ctx.setLineDash(DASH.map((d) => d * devicePixelRatio));
        ctx.beginPath();
        ctx.moveTo(left, y);
        ctx.lineTo(left + width, y);
        ctx.stroke();
      });
      ctx.setLineDash([]);
      Object.entries(spec.intervals || {}).forEach(([key, whiskers]) => {
        ctx.strokeStyle = COLOURS[keys.indexOf(key) % COLOURS.length];
        ctx.lineWidth = 2 * devicePixelRatio;
        const cap = 8 * devicePixelRatio;
        whiskers.forEach(([x, low, high]) => {
          const cx = u.valToPos(x, "x", true);
          const y0 = u.valToPos(low, "y", true);
          const y1 = u.valToPos(high, "y", true);
          ctx.beginPath();
          ctx.moveTo(cx, y0); ctx.lineTo(cx, y1);
          ctx.moveTo(cx - cap, y0); ctx.lineTo(cx + cap, y0);
          ctx.moveTo(cx - cap, y1); ctx.lineTo(cx + cap, y1);
          ctx.stroke();
        });
      });
      ctx.restore();
    };
  }

  function draw(figure) {
    if (figure.dataset.drawn || !window.uPlot) return;
    figure.dataset.drawn = "1";
    const spec = JSON.parse(figure.querySelector('script[type="application/json"]').textContent);
    const keys = Object.keys(spec.series);
    const xs = xValues(spec, keys);
    const lines = spec.lines || [];
    const columns = keys.map((k) => {
      const byX = new Map(spec.series[k]);
      return xs.map((x) => (byX.has(x) ? byX.get(x) : null));
    }).concat(lines.map((line) => xs.map(() => line.y)));
    const xSeries = { label: spec.x_label || "step" };
    if (spec.x === "category") xSeries.value = (u, v) => (v == null ? "" : spec.categories[v] ?? "");
    const options = {
      width: Math.max(260, Math.min(figure.clientWidth - 24, 600)),
      height: 240,
      scales: { x: xScale(spec, xs), y: yScale(spec, keys) },
      axes: [xAxis(spec), { label: spec.unit, size: 70, values: tickFormat(spec) }],
      series: [xSeries, ...keys.map((k, i) => seriesOption(spec, k, i, xs.length)), ...lines.map(referenceOption)],
      hooks: { draw: [drawExtras(spec, keys)] },
      legend: { live: false },  // names only: a live legend shows "--" until the pointer is on a point
    };
    new uPlot(options, [xs, ...columns], figure);
  }

  function init(root) {
    (root.matches && root.matches("[data-chart]") ? [root] : []).concat(Array.from(root.querySelectorAll("[data-chart]"))).forEach(draw);
  }
  if (window.htmx) htmx.onLoad(init); else document.addEventListener("DOMContentLoaded", () => init(document));
})();
