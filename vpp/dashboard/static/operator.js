// Operator console: fleet power against baseline and target (ECharts), the fleet summary by
// kind, status and owner (the server groups and sums), events (each opens its own page) and one
// page of devices at a time (the server filters, searches, sorts and pages: 10,000 devices are
// never sent to the browser). Refreshes every 2 s without a reload.
"use strict";
const PAGE = 50;
let timer = null;
let last = null;
let offset = 0;
let total = 0;

function filterQuery() {
  const f = new FormData(document.getElementById("filters"));
  const q = new URLSearchParams();
  for (const [k, v] of f.entries()) if (String(v).trim()) q.set(k, String(v).trim());
  return q;
}

function summaryRows(groups, label) {
  return groups.map((g) => [label(g), Vpp.num(g.devices, 0), Vpp.num(g.online, 0),
    Vpp.power(g.rated_kw), Vpp.power(g.power_kw)]);
}

function showSummary(s) {
  document.getElementById("online").textContent = Vpp.num(s.online, 0) + " / " + Vpp.num(s.devices, 0);
  document.getElementById("rated").textContent = Vpp.power(s.rated_kw);
  Vpp.fillTable(document.getElementById("by-kind"), summaryRows(s.by_kind, (g) => Vpp.kindName(g.key)));
  Vpp.fillTable(document.getElementById("by-status"), summaryRows(s.by_status,
    (g) => Vpp.status(g.key)));
  Vpp.fillTable(document.getElementById("by-owner"), summaryRows(s.by_owner, (g) => g.label));
}

function showEvents(events) {
  Vpp.fillTable(document.getElementById("events"), events.map((e) => [
    Vpp.link("/dashboard/event.html?id=" + e.id, "#" + e.id), e.external_id, Vpp.typeName(e.event_type),
    Vpp.span(e.start, e.end), Vpp.power(e.requested_kw), Vpp.power(e.declared_kw),
    Vpp.power(e.delivered_kw), Vpp.yuan(e.revenue_yuan), Vpp.eventStatus(e.status),
  ]));
}

function showDevices(page) {
  total = page.total;
  Vpp.fillTable(document.getElementById("devices"), page.items.map((d) => [
    d.id, d.name, Vpp.kindName(d.kind), d.owner_name, Vpp.status(d.status),
    Vpp.power(d.rated_power_kw), Vpp.power(d.power_kw), Vpp.power(d.setpoint_kw), Vpp.pct(d.soc_pct),
  ]));
  const first = page.total ? page.offset + 1 : 0;
  document.getElementById("page-info").textContent = Vpp.num(first, 0) + "–"
    + Vpp.num(page.offset + page.items.length, 0) + " " + Vpp.t("of") + " " + Vpp.num(page.total, 0);
  document.getElementById("prev").disabled = page.offset === 0;
  document.getElementById("next").disabled = page.offset + page.items.length >= page.total;
}

async function refresh() {
  try {
    const q = filterQuery();
    q.set("offset", String(offset)); q.set("limit", String(PAGE));
    const [st, summary, events, page] = await Promise.all([
      Vpp.api("/fleet/status?points=600"), Vpp.api("/console/fleet-summary?top=10"),
      Vpp.api("/events?limit=50"), Vpp.api("/console/devices?" + q.toString()),
    ]);
    last = st;
    document.getElementById("power").textContent = Vpp.power(st.fleet_power_kw);
    const a = st.active_event;
    const active = document.getElementById("active");
    active.replaceChildren(a ? Vpp.link("/dashboard/event.html?id=" + a.id, "#" + a.id + " " + a.external_id)
      : document.createTextNode(Vpp.t("none")));
    document.getElementById("declared").textContent = a ? Vpp.power(a.declared_kw) : "–";
    document.getElementById("delivered").textContent = a ? Vpp.power(st.delivered_kw) : "–";
    showSummary(summary);
    showEvents(events);
    showDevices(page);
    draw();
    document.getElementById("error").textContent = "";
  } catch (e) {
    document.getElementById("error").textContent = e.message;
  }
}

function draw() {
  if (!last) return;
  const s = last.series;
  const el = document.getElementById("chart");
  const all = s.flatMap((p) => [p.fleet_kw, p.baseline_kw, p.target_kw]);
  const u = Vpp.powerUnit(all);
  const line = (name, key, color, type) => ({
    name, type: "line", showSymbol: false, connectNulls: false, animation: false,
    lineStyle: { color, type, width: key === "fleet_kw" ? 2.5 : 1.5 }, itemStyle: { color },
    data: s.map((p) => [Date.parse(p.ts), p[key] === null ? null : p[key] / u.scale]),
  });
  Vpp.chart(el).setOption({
    tooltip: { trigger: "axis", renderMode: "richText",
      valueFormatter: (v) => (v === null ? "–" : Vpp.num(v, 2) + " " + u.unit) },
    legend: { top: 0 }, grid: { left: 60, right: 20, top: 36, bottom: 30 },
    xAxis: Vpp.timeAxis(s.length ? Date.parse(s[s.length - 1].ts) - Date.parse(s[0].ts) : 0),
    yAxis: Vpp.powerAxis(u.unit),
    series: [line(Vpp.t("power"), "fleet_kw", "#0b6bcb", "solid"),
      line(Vpp.t("baseline"), "baseline_kw", "#888", "dashed"),
      line(Vpp.t("target"), "target_kw", "#c62828", "dotted")],
  }, { notMerge: true });
  el.dataset.points = String(s.length);
  el.dataset.unit = u.unit;
}

function labelKinds() {
  document.querySelectorAll("#filters select[name=kind] option[value]").forEach((o) => {
    if (o.value) o.textContent = Vpp.kindName(o.value);
  });
  document.querySelectorAll("#filters select[name=status] option[value]").forEach((o) => {
    if (o.value) o.textContent = Vpp.status(o.value).text;
  });
}

let typing = null;
document.getElementById("filters").addEventListener("input", () => {
  clearTimeout(typing);
  typing = setTimeout(() => { offset = 0; refresh(); }, 250);
});
document.getElementById("filters").addEventListener("submit", (ev) => ev.preventDefault());
document.getElementById("prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); refresh(); });
document.getElementById("next").addEventListener("click", () => {
  if (offset + PAGE < total) { offset += PAGE; refresh(); }
});
labelKinds();
Vpp.signInForm(() => {
  document.getElementById("console").classList.remove("hidden");
  document.getElementById("hint").classList.add("hidden");
  if (timer) clearInterval(timer);
  refresh();
  timer = setInterval(refresh, 2000);
  Forecast.start();
  Performance.start();
  AlertFeed.connect();
});
document.addEventListener("vpp-lang", () => { labelKinds(); if (Vpp.me) refresh(); });
