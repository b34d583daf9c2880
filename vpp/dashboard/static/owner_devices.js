// Owner page, device views: each device's part of a settled event (expand the event's row), and
// a device's preferences with what the change does to what it can shed, before saving.
"use strict";
Object.assign(I18N.en, {
  byDevice: "By device", show: "Show", hide: "Hide", preferences: "Preferences", edit: "Edit",
  preferencesOf: "Preferences of", participate: "Take part in events", yes: "yes", no: "no",
  comfortMin: "Comfort min °C", comfortMax: "Comfort max °C", maxShedMinutes: "Max shed minutes",
  reserveSoc: "Reserve SoC %", evDeparture: "Car leaves at (HH:MM)", evEnergy: "Energy needed kWh",
  save: "Save", close: "Close", saved: "Saved.", previewTitle: "Effect of the change (not saved yet)",
  previewHint: "Change a field to see what it does before saving.",
  previewShed: "{name} would shed at most {after} instead of {before}.",
  previewSame: "{name} would shed at most {after}, as now.",
  previewOut: "It would be left out of every plan while it does not take part.",
  optOutUntil: "Leave out of events until (CST)", optOutDay: "For 24 h",
  previewUntil: "It would be left out of the events that start before {until}, and take part again after, by itself.",
  previewBand: "The indoor temperature stays inside the new comfort band for its whole shed, so the band does not shorten it.",
  previewWindow: "Over the next {hours} h from {from}, held over the whole window.",
  responseKwh: "Response", sharePct: "Share", unmetered: "Unmetered intervals", excluded: "excluded (override)",
  notAttributed: "Counted at the connection meter, not by device",
  devicesTotal: "Devices' total", settledTotal: "Settled response",
});
Object.assign(I18N.zh, {
  byDevice: "按设备", show: "展开", hide: "收起", preferences: "偏好", edit: "修改",
  preferencesOf: "设备偏好：", participate: "参与响应事件", yes: "是", no: "否",
  comfortMin: "舒适温度下限 °C", comfortMax: "舒适温度上限 °C", maxShedMinutes: "最长削减分钟数",
  reserveSoc: "保留电量 %", evDeparture: "车辆离开时间 (HH:MM)", evEnergy: "所需电量 kWh",
  save: "保存", close: "关闭", saved: "已保存。", previewTitle: "修改的影响（尚未保存）",
  previewHint: "修改任一项即可在保存前看到其影响。",
  previewShed: "{name} 最多可削减 {after}（现为 {before}）。",
  previewSame: "{name} 最多可削减 {after}，与现在相同。",
  previewOut: "不参与期间，该设备不会被纳入任何调度计划。",
  optOutUntil: "暂停参与响应至（北京时间）", optOutDay: "暂停 24 小时",
  previewUntil: "{until} 之前开始的响应事件将不纳入该设备，之后自动恢复参与。",
  previewBand: "在整个削减期间室内温度仍在新的舒适温度区间内，该区间不会缩短削减时间。",
  previewWindow: "按 {from} 起未来 {hours} 小时计算，整段时间持续保持。",
  baselineKwh: "基线电量", meteredKwh: "计量电量", responseKwh: "响应电量", sharePct: "占比",
  unmetered: "缺测时段数", excluded: "已排除（业主干预）",
  notAttributed: "按并网点计量计入，不分摊到设备",
  devicesTotal: "设备合计", settledTotal: "结算响应电量",
});

const OwnerDevices = {
  expanded: new Set(),
  shares: {}, // event id -> the API's answer
  editing: null, // the device whose preferences are open
  previewTimer: null,

  expandButton(e) {
    if (e.status !== "settled") return "";
    const b = document.createElement("button");
    b.className = "secondary expand"; b.dataset.event = e.id;
    b.textContent = Vpp.t(OwnerDevices.expanded.has(e.id) ? "hide" : "show");
    b.addEventListener("click", () => OwnerDevices.toggle(e.id));
    return b;
  },

  async toggle(id) {
    const err = document.getElementById("error");
    if (OwnerDevices.expanded.has(id)) OwnerDevices.expanded.delete(id);
    else {
      try {
        OwnerDevices.shares[id] = await Vpp.api("/owner/events/" + id + "/devices");
        OwnerDevices.expanded.add(id);
      } catch (e) { err.textContent = e.message; return; }
    }
    document.querySelectorAll("button.expand").forEach((b) => {
      b.textContent = Vpp.t(OwnerDevices.expanded.has(Number(b.dataset.event)) ? "hide" : "show");
    });
    OwnerDevices.showExpanded();
  },

  // the device table of each expanded event, in a row under the event's
  showExpanded() {
    document.querySelectorAll("#events tr.detail").forEach((r) => r.remove());
    for (const b of document.querySelectorAll("#events button.expand")) {
      const id = Number(b.dataset.event);
      const share = OwnerDevices.shares[id];
      if (!OwnerDevices.expanded.has(id) || !share) continue;
      const tr = document.createElement("tr");
      tr.className = "detail"; tr.dataset.event = id;
      const td = document.createElement("td");
      td.colSpan = 5;
      td.appendChild(OwnerDevices.shareTable(share));
      tr.appendChild(td);
      b.closest("tr").after(tr);
    }
  },

  shareTable(share) {
    const table = document.createElement("table");
    table.className = "num devices-share";
    const head = document.createElement("thead");
    const hr = document.createElement("tr");
    for (const k of ["name", "kind", "baselineKwh", "meteredKwh", "responseKwh", "sharePct", "unmetered"]) {
      const th = document.createElement("th"); th.textContent = Vpp.t(k); hr.appendChild(th);
    }
    head.appendChild(hr);
    const body = document.createElement("tbody");
    const rows = share.devices.map((d) => [
      d.excluded ? { text: d.name + " · " + Vpp.t("excluded"), cls: "excluded" } : d.name,
      Vpp.kindName(d.kind), Vpp.energy(d.baseline_kwh), Vpp.energy(d.metered_kwh),
      Vpp.energy(d.response_kwh), Vpp.pct(d.share_pct, 1), Vpp.num(d.unmetered_intervals, 0),
    ]);
    rows.push([Vpp.t("devicesTotal"), "", "", "", Vpp.energy(share.devices_response_kwh), "", ""]);
    if (share.not_attributed_kwh) {
      rows.push([Vpp.t("notAttributed"), "", "", "", Vpp.energy(share.not_attributed_kwh), "", ""]);
    }
    rows.push([Vpp.t("settledTotal"), "", "", "", Vpp.energy(share.settled_response_kwh), "", ""]);
    Vpp.fillTable(body, rows);
    table.append(head, body);
    return table;
  },

  // -- preferences ---------------------------------------------------------------------------
  prefsButton(d) {
    const b = document.createElement("button");
    b.className = "secondary prefs"; b.dataset.device = d.id; b.textContent = Vpp.t("edit");
    b.addEventListener("click", () => OwnerDevices.openPrefs(d));
    return b;
  },

  openPrefs(d) {
    OwnerDevices.editing = d;
    document.getElementById("prefs").classList.remove("hidden");
    document.getElementById("prefs-device").textContent = d.name;
    const form = document.getElementById("prefs-form");
    for (const label of form.querySelectorAll("label[data-kinds]")) {
      const kinds = label.dataset.kinds.split(" ");
      label.classList.toggle("hidden", !(kinds.includes("all") || kinds.includes(d.kind)));
    }
    const p = d.preferences || {};
    for (const el of form.elements) {
      if (!el.name) continue;
      el.value = el.name === "participate" ? String(p.participate !== false)
        : el.name === "opt_out_until" ? OwnerDevices.localInput(p.opt_out_until)
        : (p[el.name] ?? "");
    }
    OwnerDevices.showLines(null);
  },

  // an instant as the opt-out field reads it, 2026-12-09 08:00 in CST as every date on the page
  // (a datetime-local input would show the browser's 12/09/2026 order), and back: ZONE
  // (Asia/Shanghai) is UTC+8 all year (no summer time since 1991)
  localInput(iso) {
    if (!iso) return "";
    const p = Vpp.parts(iso);
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`;
  },
  fromInput(value) { return value.trim().replace(" ", "T") + ":00+08:00"; },

  // the fields shown for the device's kind, as the API takes them (empty: unchanged; an
  // opt-out emptied: ended now)
  changes() {
    const out = {};
    const stored = (OwnerDevices.editing && OwnerDevices.editing.preferences) || {};
    for (const el of document.getElementById("prefs-form").elements) {
      if (el.name === "opt_out_until") {
        if (el.value) out.opt_out_until = OwnerDevices.fromInput(el.value);
        else if (stored.opt_out_until) out.opt_out_until = null;
        continue;
      }
      if (!el.name || el.closest("label").classList.contains("hidden") || el.value === "") continue;
      if (el.name === "participate") out.participate = el.value === "true";
      else if (el.name === "ev_departure") out.ev_departure = el.value;
      else out[el.name] = Number(el.value);
    }
    return out;
  },

  async preview() {
    const d = OwnerDevices.editing;
    if (!d) return;
    try {
      const p = await Vpp.api("/owner/devices/" + d.id + "/preferences/preview",
        { method: "POST", body: OwnerDevices.changes() });
      OwnerDevices.last = p;
      OwnerDevices.showLines(p);
    } catch (e) { OwnerDevices.showLines(null, e.message); }
  },

  // the preview in the page's language, from its numbers
  showLines(p, error) {
    const ul = document.getElementById("prefs-preview");
    const li = (text, cls) => { const x = document.createElement("li"); x.textContent = text; x.className = cls || ""; return x; };
    if (error) { ul.replaceChildren(li(error, "error")); return; }
    if (!p) { ul.replaceChildren(li(Vpp.t("previewHint"))); return; }
    const name = OwnerDevices.editing.name;
    const args = { name, before: Vpp.power(p.before_max_kw), after: Vpp.power(p.after_max_kw) };
    const same = Math.abs(p.after_max_kw - p.before_max_kw) < 1e-6;
    const out = [li(Vpp.t(same ? "previewSame" : "previewShed", args))];
    if (p.proposed.participate === false) out.push(li(Vpp.t("previewOut")));
    else if (p.proposed.opt_out_until) {
      out.push(li(Vpp.t("previewUntil", { until: Vpp.time(p.proposed.opt_out_until) })));
    }
    const band = ["comfort_min_c", "comfort_max_c"].some((k) => p.proposed[k] !== p.current[k]);
    if (band && same) out.push(li(Vpp.t("previewBand")));
    out.push(li(Vpp.t("previewWindow", { hours: p.before_kw.length * p.interval_minutes / 60,
      from: Vpp.time(p.window_start) }), "hint"));
    ul.replaceChildren(...out);
  },
};

document.getElementById("prefs-form").addEventListener("input", () => {
  clearTimeout(OwnerDevices.previewTimer);
  OwnerDevices.previewTimer = setTimeout(() => OwnerDevices.preview(), 250);
});
document.getElementById("prefs-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const d = OwnerDevices.editing;
  try {
    const saved = await Vpp.api("/devices/" + d.id + "/preferences",
      { method: "PATCH", body: OwnerDevices.changes() });
    OwnerDevices.editing = saved;
    document.getElementById("prefs-preview").replaceChildren(Object.assign(
      document.createElement("li"), { textContent: Vpp.t("saved") }));
  } catch (e) { OwnerDevices.showLines(null, e.message); }
});
// a day off: from now to the same time tomorrow, on the minute
document.getElementById("opt-out-day").addEventListener("click", () => {
  const input = document.querySelector("#prefs-form input[name=opt_out_until]");
  input.value = OwnerDevices.localInput(new Date(Date.now() + 86400e3).toISOString());
  input.dispatchEvent(new Event("input", { bubbles: true }));
});
document.getElementById("prefs-close").addEventListener("click", () => {
  OwnerDevices.editing = null;
  document.getElementById("prefs").classList.add("hidden");
});
document.addEventListener("vpp-lang", () => {
  if (OwnerDevices.editing && OwnerDevices.last) OwnerDevices.showLines(OwnerDevices.last);
});
