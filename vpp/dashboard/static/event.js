// One event: what was asked (the call), offered (the latest bid and its detail), planned
// (target against baseline), metered and paid (the programme's band) in one ECharts chart, each
// owner's share and payout, the plans with their reasons, the settlement and its ledger.
// Everything comes from the JSON API (/events/{id}, /delivery, /bids, /plans, /settlements,
// /payouts, /owners, /console/events/{id}); refreshed every 5 s while the event runs.
"use strict";
const EVENT_ID = Number(new URLSearchParams(location.search).get("id"));
let data = null;
let timer = null;

function setText(id, text) { document.getElementById(id).textContent = text; }

async function load() {
  const id = EVENT_ID;
  const [ev, delivery, bids, plans, settlements, payouts, owners, extras] = await Promise.all([
    Vpp.api(`/events/${id}`), Vpp.api(`/events/${id}/delivery`), Vpp.api(`/events/${id}/bids`),
    Vpp.api(`/events/${id}/plans`), Vpp.api("/settlements"), Vpp.api("/payouts"),
    Vpp.api("/owners"), Vpp.api(`/console/events/${id}`),
  ]);
  return { ev, delivery, bid: bids.length ? bids[bids.length - 1] : null, plans,
    settlements: settlements.filter((s) => s.event_id === id).sort((a, b) => a.version - b.version),
    payouts: payouts.filter((p) => p.event_id === id),
    owners: Object.fromEntries(owners.map((o) => [o.id, o.name])), extras };
}

function detailValue(v) {
  if (typeof v === "number") return Vpp.num(v, Number.isInteger(v) ? 0 : 2);
  if (Array.isArray(v) && v.every((x) => typeof x === "number")) {
    const shown = v.slice(0, 8).map((x) => Vpp.num(x, 1)).join(" / ");
    return v.length > 8 ? shown + " …" : shown;
  }
  if (v && typeof v === "object" && !Array.isArray(v)) {  // e.g. per-owner sources: one line each
    return Object.entries(v).map(([k, x]) => `${k}: ${x && typeof x === "object"
      ? Object.entries(x).map(([a, b]) => `${a} ${b}`).join(", ") : x}`).join("; ").slice(0, 400);
  }
  return typeof v === "string" ? v : JSON.stringify(v).slice(0, 200);
}

function showHead(d) {
  const ev = d.ev, dl = d.delivery, band = d.extras.band;
  setText("ev-title", "#" + ev.id);
  setText("ev-external", ev.external_id);
  setText("ev-window", Vpp.span(ev.start, ev.end));
  setText("ev-type", Vpp.typeName(ev.event_type));
  setText("ev-direction", Vpp.typeName(ev.direction));
  setText("ev-programme", ev.programme);
  setText("ev-requested", Vpp.power(ev.requested_kw));
  const st = document.getElementById("ev-status");
  const word = Vpp.eventStatus(ev.status);
  st.textContent = word.text; st.className = word.cls;
  setText("ev-declared", Vpp.power(d.bid ? d.bid.declared_kw : ev.declared_kw));
  setText("ev-price", d.bid ? Vpp.num(d.bid.price_yuan_per_kwh, 2) + " ¥/kWh" : "–");
  setText("ev-delivered", Vpp.power(dl.delivered_kw));
  setText("ev-performance", Vpp.pct(dl.performance_pct, 1));
  setText("ev-revenue", Vpp.yuan(ev.revenue_yuan));
  setText("ev-band", band ? `${Vpp.num(band.lower_pct, 0)}–${Vpp.num(band.upper_pct, 0)} %`
    : Vpp.t("noBand") + (d.extras.band_error ? " (" + d.extras.band_error + ")" : ""));
  setText("ev-measured", dl.measured_by);
  const detail = document.getElementById("bid-detail");
  detail.replaceChildren();
  for (const [k, v] of Object.entries(d.bid ? d.bid.detail : {})) {
    if (k === "owners" || v === null || v === undefined) continue;
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = k; dd.textContent = detailValue(v);
    detail.append(dt, dd);
  }
}

function showTables(d) {
  const paid = Object.fromEntries(d.payouts.map((p) => [p.owner_id, p]));
  Vpp.fillTable(document.getElementById("shares"), (d.bid ? d.bid.owners : []).map((o) => [
    d.owners[o.owner_id] || "#" + o.owner_id, Vpp.power(o.declared_kw), Vpp.pct(o.share_fraction * 100, 1),
    Vpp.power(o.expected_response_kw),
    o.penalty_probability === null ? "–" : Vpp.pct(o.penalty_probability * 100, 1), o.limited_by,
    paid[o.owner_id] ? Vpp.num(paid[o.owner_id].contribution_kwh, 2) : "–",
    paid[o.owner_id] ? Vpp.yuan(paid[o.owner_id].amount_yuan) : "–",
  ]));
  Vpp.fillTable(document.getElementById("plans"), d.plans.map((p) => [
    "#" + p.id, Vpp.time(p.created_at), p.reason || "–", Vpp.num(p.devices, 0),
    Vpp.power(p.shortfall_kw), p.status, Vpp.num(p.solve_seconds, 3),
  ]));
  Vpp.fillTable(document.getElementById("settlements"), d.settlements.map((s) => [
    "v" + s.version, Vpp.num(s.baseline_kwh, 1), Vpp.num(s.metered_kwh, 1), Vpp.num(s.response_kwh, 1),
    Vpp.pct(s.performance_ratio * 100, 1), Vpp.yuan(s.revenue_fen / 100), Vpp.yuan(s.penalty_fen / 100),
    Vpp.yuan(s.fee_fen / 100), s.status,
  ]));
  Vpp.fillTable(document.getElementById("ledger"), d.extras.ledger.map((t) => [
    "#" + t.id, Vpp.time(t.created_at), t.kind, t.description,
    t.entries.map((e) => `${e.account}${e.owner_id ? " (" + (d.owners[e.owner_id] || e.owner_id) + ")" : ""}`
      + ` ${Vpp.yuan(e.amount_yuan)}`).join("; "),
  ]));
}

// The paid band in load terms: peak shaving is paid while the load is between
// baseline - upper% x declared and baseline - lower% x declared (valley filling: above baseline).
function bandBounds(d, iv) {
  const band = d.extras.band;
  if (!band || iv.baseline_kw === null) return [null, null];
  const sign = d.ev.direction === "valley_filling" ? 1 : -1;
  const a = iv.baseline_kw + sign * iv.declared_kw * Number(band.lower_pct) / 100;
  const b = iv.baseline_kw + sign * iv.declared_kw * Number(band.upper_pct) / 100;
  return [Math.min(a, b), Math.max(a, b)];
}

// The plan as a load: the API's target is the reduction (peak shaving) or increase (valley
// filling) asked of the fleet, so the planned load is the baseline minus (plus) it.
function planLoad(d, iv) {
  if (iv.baseline_kw === null || iv.target_kw === null) return null;
  return iv.baseline_kw + (d.ev.direction === "valley_filling" ? 1 : -1) * iv.target_kw;
}

function draw(d) {
  const ivs = d.delivery.intervals;
  const el = document.getElementById("chart");
  const values = ivs.flatMap((i) => [i.baseline_kw, planLoad(d, i), i.metered_kw]);
  const u = Vpp.powerUnit(values);
  const end = Date.parse(d.ev.end);
  const pts = (f) => {
    const out = ivs.map((i) => { const v = f(i); return [Date.parse(i.interval_start), v === null ? null : v / u.scale]; });
    if (out.length) out.push([end, out[out.length - 1][1]]);  // the last interval's step to the end
    return out;
  };
  const line = (name, f, color, type, width) => ({ name, type: "line", step: "start", showSymbol: false,
    animation: false, lineStyle: { color, type, width }, itemStyle: { color }, data: pts(f) });
  const bandName = Vpp.t("paidBand");
  Vpp.chart(el).setOption({
    tooltip: { trigger: "axis", renderMode: "richText",
      valueFormatter: (v) => (v === null || v === undefined ? "–" : Vpp.num(v, 2) + " " + u.unit) },
    legend: { top: 0 }, grid: { left: 60, right: 20, top: 40, bottom: 30 },
    xAxis: Vpp.timeAxis(), yAxis: Vpp.powerAxis(u.unit),
    series: [
      { name: bandName, type: "line", step: "start", stack: "band", stackStrategy: "all", showSymbol: false, animation: false,
        lineStyle: { opacity: 0 }, tooltip: { show: false }, data: pts((i) => bandBounds(d, i)[0]) },
      { name: bandName, type: "line", step: "start", stack: "band", stackStrategy: "all", showSymbol: false, animation: false,
        lineStyle: { opacity: 0 }, itemStyle: { color: "#8fd19e" }, areaStyle: { color: "rgba(26,127,55,.18)" },
        data: pts((i) => { const [a, b] = bandBounds(d, i); return a === null ? null : b - a; }) },
      line(Vpp.t("baseline"), (i) => i.baseline_kw, "#888", "dashed", 1.5),
      line(Vpp.t("plan"), (i) => planLoad(d, i), "#c62828", "dotted", 2),
      line(Vpp.t("metered"), (i) => i.metered_kw, "#0b6bcb", "solid", 2.5),
    ],
  }, { notMerge: true });
  el.dataset.points = String(ivs.length);
  el.dataset.unit = u.unit;
}

async function refresh() {
  try {
    data = await load();
    showHead(data); showTables(data); draw(data);
    document.getElementById("error").textContent = "";
    const running = ["accepted", "active", "completed", "received"].includes(data.ev.status);
    if (!running && timer) { clearInterval(timer); timer = null; }
  } catch (e) {
    document.getElementById("error").textContent = e.message;
  }
}

Vpp.signInForm(() => {
  document.getElementById("page").classList.remove("hidden");
  document.getElementById("hint").classList.add("hidden");
  if (!Number.isInteger(EVENT_ID) || EVENT_ID < 1) {
    document.getElementById("error").textContent = "?id=<event id> is required";
    return;
  }
  refresh();
  if (timer) clearInterval(timer);
  timer = setInterval(refresh, 5000);
});
document.addEventListener("vpp-lang", () => { if (data) { showHead(data); showTables(data); draw(data); } });
