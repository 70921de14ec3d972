// Channel analytics charts (ECharts, vendored): a line of adds, deletions and net per period, and bars per
// channel or staff member, drawn from the JSON the page embeds.
(function () {
  "use strict";
  function draw() {
    var data = document.getElementById("stats-data"), names = document.getElementById("stats-labels");
    if (!data || !names || !window.echarts) { return; }
    var values = JSON.parse(data.textContent), labels = JSON.parse(names.textContent);
    var line = document.getElementById("stats-line");
    if (line) {
      var chart = window.echarts.init(line);
      chart.setOption({
        animation: false,
        tooltip: { trigger: "axis" },
        legend: { data: [labels.adds, labels.deletions, labels.net] },
        grid: { left: 8, right: 16, top: 32, bottom: 8, containLabel: true },
        xAxis: { type: "category", data: values.periods },
        yAxis: { type: "value", minInterval: 1 },
        series: [
          { name: labels.adds, type: "line", data: values.adds, itemStyle: { color: "#2563eb" } },
          { name: labels.deletions, type: "line", data: values.deletions, itemStyle: { color: "#dc2626" } },
          { name: labels.net, type: "line", data: values.net, itemStyle: { color: "#059669" } }
        ]
      });
      line.dataset.rendered = "1";
      window.addEventListener("resize", function () { chart.resize(); });
    }
    var bars = document.getElementById("stats-bars");
    if (bars) {
      if (!values.keys.length) {
        bars.textContent = bars.dataset.empty || "";
        bars.dataset.rendered = "1";
        return;
      }
      var barChart = window.echarts.init(bars);
      barChart.setOption({
        animation: false,
        tooltip: { trigger: "axis" },
        legend: { data: [labels.adds, labels.deletions, labels.net] },
        grid: { left: 8, right: 16, top: 32, bottom: 8, containLabel: true },
        xAxis: { type: "value", minInterval: 1 },
        yAxis: { type: "category", data: values.keys, inverse: true },
        series: [
          { name: labels.adds, type: "bar", data: values.key_adds, itemStyle: { color: "#2563eb" } },
          { name: labels.deletions, type: "bar", data: values.key_deletions, itemStyle: { color: "#dc2626" } },
          { name: labels.net, type: "bar", data: values.key_net, itemStyle: { color: "#059669" } }
        ]
      });
      bars.dataset.rendered = "1";
      window.addEventListener("resize", function () { barChart.resize(); });
    }
  }
  window.addEventListener("load", draw);
})();
