// Segment pages: the builder's condition palette and the member trend chart (ECharts, vendored).
(function () {
  "use strict";

  // The palette appends the chosen condition to the text, joined by AND / OR / AND NOT, and lets htmx
  // recount (the textarea listens for "input").
  document.querySelectorAll("[data-join]").forEach(function (button) {
    button.addEventListener("click", function () {
      var text = document.getElementById("segment-text");
      var choice = document.getElementById("palette-condition");
      if (!text || !choice) return;
      var condition = choice.value;
      if (/^tag:/.test(condition) && /[\s()":,@<>=!\/]/.test(condition.slice(4))) {
        condition = 'tag:"' + condition.slice(4).replace(/\\/g, "\\\\").replace(/"/g, '\\"') + '"';
      }
      var current = text.value.trim();
      var joiner = button.getAttribute("data-join");
      if (!current) {
        text.value = joiner === "AND NOT" ? "NOT " + condition : condition;
      } else {
        text.value = current + " " + joiner + " " + condition;
      }
      text.dispatchEvent(new Event("input", { bubbles: true }));
      text.focus();
    });
  });

  var holder = document.getElementById("segment-trend");
  var data = document.getElementById("segment-trend-data");
  if (holder && data && window.echarts) {
    var chart = JSON.parse(data.textContent);
    var empty = chart.series.every(function (s) { return s.points.length === 0; });
    if (empty) {
      holder.classList.add("segment-chart-empty");
      holder.textContent = holder.getAttribute("data-empty") || "—";
      return;
    }
    var plot = window.echarts.init(holder);
    plot.setOption({
      tooltip: { trigger: "axis" },
      legend: { type: "scroll", top: 0 },
      grid: { left: 48, right: 16, top: 32, bottom: 28 },
      xAxis: { type: "time" },
      yAxis: { type: "value", minInterval: 1 },
      series: chart.series.map(function (s) {
        return { name: s.name, type: "line", showSymbol: s.points.length < 3, data: s.points };
      }),
    });
    window.addEventListener("resize", function () { plot.resize(); });
  }
})();
