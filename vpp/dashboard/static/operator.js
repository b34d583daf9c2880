// Operator page: live fleet power against baseline and target, events, devices. Refreshes
// every 2 s through the JSON API; the chart redraws in place (no page reload).
"use strict";
let timer = null;
let last = null;

function kw(v) { return Vpp.fmt(v) + " kW"; }

async function refresh() {
  try {
    const [st, events, devices] = await Promise.all([
      Vpp.api("/fleet/status?points=600"), Vpp.api("/events?limit=50"), Vpp.api("/devices"),
    ]);
    last = st;
    document.getElementById("online").textContent = st.devices_online + " / " + st.devices_total;
    document.getElementById("power").textContent = kw(st.fleet_power_kw);
    const a = st.active_event;
    document.getElementById("active").textContent = a ? "#" + a.id + " " + a.external_id : Vpp.t("none");
    document.getElementById("declared").textContent = a ? kw(a.declared_kw) : "–";
    document.getElementById("delivered").textContent = a ? kw(st.delivered_kw) : "–";
    draw();
    Vpp.fillTable(document.getElementById("events"), events.map((e) => [
      e.id, e.external_id, e.source, e.event_type, Vpp.time(e.start) + "–" + Vpp.time(e.end),
      Vpp.fmt(e.requested_kw), Vpp.fmt(e.declared_kw), Vpp.fmt(e.delivered_kw),
      e.revenue_yuan === null ? "–" : e.revenue_yuan, { text: e.status, cls: "status-" + e.status },
    ]));
    Vpp.fillTable(document.getElementById("devices"), devices.map((d) => [
      d.id, d.name, d.kind, d.owner_id, { text: d.status, cls: "status-" + d.status },
      Vpp.fmt(d.power_kw), Vpp.fmt(d.setpoint_kw), Vpp.fmt(d.soc_pct, 0),
    ]));
    document.getElementById("error").textContent = "";
  } catch (e) {
    document.getElementById("error").textContent = e.message;
  }
}

function draw() {
  if (!last) return;
  const s = last.series;
  drawChart(document.getElementById("chart"), s.map((p) => Date.parse(p.ts)), [
    { name: "baseline", color: "#888", values: s.map((p) => p.baseline_kw), dash: [6, 4] },
    { name: "target", color: "#c62828", values: s.map((p) => p.target_kw), dash: [2, 3] },
    { name: "power", color: "#0b6bcb", values: s.map((p) => p.fleet_kw), width: 2.5 },
  ]);
}

Vpp.signInForm((me) => {
  if (timer) clearInterval(timer);
  refresh();
  timer = setInterval(refresh, 2000);
});
document.addEventListener("vpp-lang", refresh);
window.addEventListener("resize", draw);
