// The load forecast every offer rests on: the daemon's latest forecast over the next 48 h as a
// P10-P90 band with its median, against the metered load of the same sites (the API sums
// both over the forecast's sites). Refreshed every minute: the forecast moves per interval.
"use strict";
const Forecast = {
  last: null,
  timer: null,
  async refresh() {
    try { Forecast.last = await Vpp.api("/console/forecast"); Forecast.draw(); }
    catch (e) { document.getElementById("forecast-state").textContent = e.message; }
  },
  draw() {
    const f = Forecast.last;
    if (!f) return;
    const el = document.getElementById("forecast-chart");
    const state = document.getElementById("forecast-state");
    state.textContent = f.state === "ok"
      ? `${Vpp.t("forecastOrigin")} ${Vpp.time(f.origin)} · ${f.levels.map((q) => "P" + Math.round(q * 100)).join(" / ")}`
      : `${(Vpp.t("forecastStates") || {})[f.state] || f.state}: ${f.message}`;
    el.classList.toggle("hidden", !f.points.length);
    if (!f.points.length) { el.dataset.points = "0"; return; }
    const u = Vpp.powerUnit(f.points.flatMap((p) => [p.high_kw, p.actual_kw]));
    const at = (p, v) => [Date.parse(p.ts), v === null ? null : v / u.scale];
    const band = Vpp.t("forecastBand");
    Vpp.chart(el).setOption({
      tooltip: { trigger: "axis", renderMode: "richText",
        valueFormatter: (v) => (v === null || v === undefined ? "–" : Vpp.num(v, 2) + " " + u.unit) },
      legend: { top: 0 }, grid: { left: 60, right: 20, top: 36, bottom: 30 },
      xAxis: { type: "time", axisLabel: { formatter: (v) => { const p = Vpp.parts(v);
        return p.hour === "00" && p.minute === "00" ? `${p.month}-${p.day}` : `${p.hour}:${p.minute}`; },
        hideOverlap: true } },
      yAxis: Vpp.powerAxis(u.unit),
      series: [
        { name: band, type: "line", stack: "fc", stackStrategy: "all", showSymbol: false, animation: false, lineStyle: { opacity: 0 },
          tooltip: { show: false }, data: f.points.map((p) => at(p, p.low_kw)) },
        { name: band, type: "line", stack: "fc", stackStrategy: "all", showSymbol: false, animation: false, lineStyle: { opacity: 0 },
          itemStyle: { color: "#9ec5f0" }, areaStyle: { color: "rgba(11,107,203,.18)" },
          data: f.points.map((p) => at(p, p.low_kw === null ? null : p.high_kw - p.low_kw)) },
        { name: Vpp.t("forecastMid"), type: "line", showSymbol: false, animation: false,
          lineStyle: { color: "#0b6bcb", type: "dashed" }, itemStyle: { color: "#0b6bcb" },
          data: f.points.map((p) => at(p, p.mid_kw)) },
        { name: Vpp.t("actual"), type: "line", showSymbol: false, animation: false,
          lineStyle: { color: "#1d2733", width: 2 }, itemStyle: { color: "#1d2733" },
          data: f.points.map((p) => at(p, p.actual_kw)) },
      ],
    }, { notMerge: true });
    el.dataset.points = String(f.points.length);
  },
  start() {
    if (Forecast.timer) clearInterval(Forecast.timer);
    Forecast.refresh();
    Forecast.timer = setInterval(Forecast.refresh, 60000);
  },
};
document.addEventListener("vpp-lang", () => Forecast.draw());
