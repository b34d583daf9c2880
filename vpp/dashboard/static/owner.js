// Owner page: sign in with an owner token, enrol a gateway and follow its probe, see my
// devices, events and payouts (the API only ever returns this owner's).
"use strict";
let probeTimer = null;

function units(text) {
  const out = [];
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const [a, b] = part.split("-").map(Number);
    for (let u = a; u <= (b || a); u++) out.push(u);
  }
  return out;
}

async function refresh() {
  try {
    const [gws, devices, events, payouts] = await Promise.all([
      Vpp.api("/gateways"), Vpp.api("/devices"), Vpp.api("/events"), Vpp.api("/payouts"),
    ]);
    Vpp.fillTable(document.getElementById("gateways"), gws.map((g) => [
      g.id, g.host + ":" + g.port, Vpp.status(g.enrolment_state),
      g.last_error || "",
    ]));
    Vpp.fillTable(document.getElementById("devices"), devices.map((d) => [
      d.id, d.name, Vpp.kindName(d.kind), Vpp.status(d.status), Vpp.power(d.power_kw),
      Vpp.power(d.setpoint_kw), Vpp.pct(d.soc_pct), OwnerDevices.prefsButton(d),
    ]));
    Vpp.fillTable(document.getElementById("events"), events.map((e) => [
      e.id, Vpp.span(e.start, e.end), Vpp.eventStatus(e.status), Vpp.power(e.delivered_kw),
      OwnerDevices.expandButton(e),
    ]));
    OwnerDevices.showExpanded();
    showEarnings(events, payouts);
  } catch (e) {
    document.getElementById("error").textContent = e.message;
  }
}

// Earnings: each payout under its event (window in local time) and summed per local month of
// the event's start, with the month's statement (the HTML `vpp report` writes) to download.
function showEarnings(events, payouts) {
  const byId = Object.fromEntries(events.map((e) => [e.id, e]));
  Vpp.fillTable(document.getElementById("payouts"), payouts.map((p) => [
    "#" + p.event_id + (byId[p.event_id] ? " " + byId[p.event_id].external_id : ""),
    byId[p.event_id] ? Vpp.span(byId[p.event_id].start, byId[p.event_id].end) : "–",
    Vpp.num(p.contribution_kwh, 2), Vpp.yuan(p.amount_yuan),
  ]));
  const months = {};
  for (const p of payouts) {
    const ev = byId[p.event_id];
    const m = Vpp.month(ev ? ev.start : p.created_at);
    const t = months[m] || (months[m] = { events: 0, kwh: 0, fen: 0 });
    t.events += 1; t.kwh += p.contribution_kwh; t.fen += p.amount_fen;
  }
  Vpp.fillTable(document.getElementById("months"), Object.keys(months).sort().reverse().map((m) => {
    const b = document.createElement("button");
    b.className = "secondary"; b.textContent = Vpp.t("download"); b.dataset.period = m;
    b.addEventListener("click", () => downloadStatement(m));
    return [m, Vpp.num(months[m].events, 0), Vpp.num(months[m].kwh, 2), Vpp.yuan(months[m].fen / 100), b];
  }));
}

async function downloadStatement(period) {
  const err = document.getElementById("error");
  try {
    const st = await Vpp.api("/statement?period=" + period);
    const url = URL.createObjectURL(new Blob([st.html], { type: "text/html" }));
    const a = Vpp.link(url, period);
    a.download = st.filename;
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) { err.textContent = e.message; }
}

// The probe's answer in plain words: the gateway's outcome, then one sentence per unit.
function probeInWords(p) {
  const units = Object.entries(p.devices);
  const ok = units.filter(([, r]) => r === "active").length;
  const words = { queued: Vpp.t("probeQueued"), running: Vpp.t("probeRunning"),
    done: Vpp.t("probeDone", { ok, n: units.length }),
    failed: Vpp.t("probeFailed", { msg: p.message || p.step }) };
  document.getElementById("probe-words").textContent = words[p.state] || p.state;
  Vpp.fillTable(document.getElementById("probe-units"), units.map(([u, r]) => [
    r === "active" ? { text: Vpp.t("unitOk", { u }), cls: "status-active" }
      : { text: Vpp.t("unitBad", { u, why: r.replace(/^failed: /, "") }), cls: "status-failed" }]));
}

// The profile picker: packaged and stored profiles of the chosen kind, with what each is.
let catalogue = [];
function fillProfiles() {
  const kind = document.querySelector("form#enrol select[name=kind]").value;
  const pick = document.getElementById("profile-pick");
  const keep = pick.value;
  pick.replaceChildren(...catalogue.filter((c) => c.kind === kind).map((c) => {
    const o = document.createElement("option");
    o.value = c.name; o.textContent = c.name + (c.vendor ? " · " + c.vendor : "");
    return o;
  }));
  if ([...pick.options].some((o) => o.value === keep)) pick.value = keep;
  const c = catalogue.find((x) => x.name === pick.value);
  document.getElementById("profile-about").textContent = c ? c.description : "";
}
document.querySelector("form#enrol select[name=kind]").addEventListener("change", fillProfiles);
document.getElementById("profile-pick").addEventListener("change", fillProfiles);

async function followProbe(gatewayId) {
  document.getElementById("probe").classList.remove("hidden");
  if (probeTimer) clearInterval(probeTimer);
  const tick = async () => {
    const g = await Vpp.api("/gateways/" + gatewayId);
    const p = g.probe || { state: g.enrolment_state, step: "", done: 0, total: 1, devices: {} };
    const st = document.getElementById("probe-state");
    st.textContent = p.state;
    st.className = "state-" + p.state;
    document.getElementById("probe-step").textContent = p.step + (p.message ? " — " + p.message : "");
    const bar = document.getElementById("probe-bar");
    bar.max = Math.max(p.total, 1); bar.value = p.done;
    probeInWords(p);
    if (p.state === "done" || p.state === "failed") { clearInterval(probeTimer); refresh(); }
  };
  await tick();
  probeTimer = setInterval(tick, 700);
}

document.getElementById("enrol").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const err = document.getElementById("error");
  try {
    const params = JSON.parse(f.get("params") || "{}");
    const devices = units(f.get("units")).map((u) => ({
      name: f.get("site") + "/" + f.get("kind") + "/u" + u, kind: f.get("kind"), unit_id: u,
      profile: f.get("profile"), rated_power_kw: Number(f.get("rated")),
      min_setpoint_kw: Number(f.get("min")), max_setpoint_kw: Number(f.get("max")), params,
    }));
    const g = await Vpp.api("/gateways", { method: "POST", body: {
      site: f.get("site"), host: f.get("host"), port: Number(f.get("port")), devices } });
    err.textContent = "";
    followProbe(g.id);
  } catch (e) {
    err.textContent = e.message;
  }
});

Vpp.signInForm((me) => {
  document.getElementById("enrol-section").classList.remove("hidden");
  Vpp.api("/profile-catalogue").then((c) => { catalogue = c; fillProfiles(); })
    .catch((e) => { document.getElementById("error").textContent = e.message; });
  document.getElementById("hint").classList.add("hidden");
  refresh();
  setInterval(refresh, 3000);
});
document.addEventListener("vpp-lang", () => { if (Vpp.me) refresh(); });
