// Shared by every page: language, the bearer token (sessionStorage only), API calls, and the
// formats a person reads: dates as 2026-12-08 14:00 CST (never 08/12), powers in kW below 1 MW
// and MW above, numbers grouped for the page's locale.
"use strict";
const I18N = {
  en: {
    title: "Xiang VPP", operator: "Operator", owner: "Owner", token: "API token", signin: "Sign in",
    signout: "Sign out", lang: "中文", devicesOnline: "Devices online", fleetPower: "Fleet power",
    activeEvent: "Active event", declared: "Declared", delivered: "Delivered", none: "none",
    chart: "Fleet power against baseline and target", power: "Power", baseline: "Baseline",
    target: "Target", events: "Events", devices: "Devices", id: "ID", external: "External id",
    source: "Source", type: "Type", window: "Window", requested: "Requested", revenue: "Revenue",
    status: "Status", name: "Name", kind: "Kind", ownerCol: "Owner", setpoint: "Setpoint",
    soc: "SoC", signedInAs: "Signed in as", enrol: "Enrol a gateway", site: "Site",
    host: "Host", port: "Port", profile: "Profile", unitIds: "Unit ids (1,2,5-7)",
    rated: "Rated", ratedKw: "Rated kW", minKw: "Min setpoint kW", maxKw: "Max setpoint kW",
    params: "Parameters (JSON)", submit: "Enrol and probe", probe: "Probe", payouts: "Payouts",
    amount: "Amount", event: "Event", contribution: "Contribution kWh",
    myDevices: "My devices", myEvents: "My events", needToken: "Paste an API token to sign in.",
    gateways: "Gateways", state: "State", lastError: "Last error",
    summary: "Fleet summary", byKind: "By kind", byStatus: "By status", byOwner: "By owner",
    count: "Devices", online: "Online", search: "Search name, profile or owner", all: "all",
    prev: "Previous", next: "Next", of: "of", tz: "CST", open: "Open",
    request: "Request", offer: "Offer", price: "Price", rule: "Offer rule", quantiles: "Offer detail",
    plan: "Plan (target)", metered: "Metered", paidBand: "Paid band", shares: "Owners' shares",
    share: "Share", expected: "Expected response", pPenalty: "Penalty probability",
    limitedBy: "Limited by", replans: "Plans and re-plans", created: "Created", reason: "Reason",
    shortfall: "Shortfall", solve: "Solve s", settlements: "Settlement", version: "Version",
    baselineKwh: "Baseline kWh", meteredKwh: "Metered kWh", responseKwh: "Response kWh",
    performance: "Performance", penalty: "Penalty", fee: "Fee", ledger: "Ledger",
    account: "Account", entries: "Entries", description: "Description", back: "All events",
    eventChart: "Plan against baseline, metered load and the paid band", performancePct: "Performance",
    measuredBy: "Measured by", direction: "Direction", programme: "Programme", noBand: "no band",
    forecast: "Load forecast, next 48 h, against metered load", forecastBand: "P10–P90",
    forecastMid: "Forecast P50", actual: "Metered", forecastOrigin: "forecast made",
    probeQueued: "Waiting to contact the gateway…", probeRunning: "Connecting to the gateway and reading each device…",
    probeDone: "The gateway answered: {ok} of {n} devices are ready and will take part in events.",
    probeFailed: "The gateway could not be enrolled: {msg}", unitOk: "Unit {u}: found and answering; ready.",
    unitBad: "Unit {u}: not usable ({why}).",
    earningsMonth: "Earnings by month", earningsEvent: "Earnings by event", month: "Month",
    statement: "Statement", download: "Download",
    alerts: "Alerts", noAlerts: "No alerts.", live: "live", reconnecting: "reconnecting…",
    statusNames: { pending: "pending", active: "active", offline: "offline", quarantined: "quarantined",
                   failed: "failed", retired: "retired", received: "received", accepted: "accepted",
                   rejected: "rejected", completed: "completed", settled: "settled",
                   unsettled: "unsettled", cancelled: "cancelled", registered: "registered",
                   probing: "probing" },
    eventStatusNames: { active: "in progress" },
    typeNames: { real_time: "real-time", day_ahead: "day-ahead", peak_shaving: "peak shaving",
                 valley_filling: "valley filling" },
    forecastStates: { ok: "ok", insufficient_history: "not enough history yet", error: "error",
                      not_run: "not run yet" },
    kindNames: { commercial_building: "Commercial building", industrial_load: "Industrial load",
                 ev_charger: "EV charger", battery: "Battery" },
  },
  zh: {
    title: "湘能虚拟电厂", operator: "运营", owner: "业主", token: "访问令牌", signin: "登录",
    signout: "退出", lang: "English", devicesOnline: "在线设备", fleetPower: "聚合功率",
    activeEvent: "当前事件", declared: "申报容量", delivered: "实际响应", none: "无",
    chart: "聚合功率、基线与目标", power: "功率", baseline: "基线", target: "目标",
    events: "响应事件", devices: "设备", id: "编号", external: "外部编号", source: "来源",
    type: "类型", window: "时段", requested: "需求", revenue: "收益", status: "状态",
    name: "名称", kind: "类别", ownerCol: "业主", setpoint: "设定值", soc: "荷电状态",
    signedInAs: "当前用户", enrol: "接入网关", site: "站点", host: "主机", port: "端口",
    profile: "设备模板", unitIds: "从站地址（1,2,5-7）", rated: "额定功率", ratedKw: "额定功率 kW",
    minKw: "最小设定 kW", maxKw: "最大设定 kW", params: "参数（JSON）", submit: "接入并检测",
    probe: "检测", payouts: "收益分配", amount: "金额", event: "事件",
    contribution: "贡献电量 kWh", myDevices: "我的设备", myEvents: "我的事件",
    needToken: "请粘贴访问令牌登录。", gateways: "网关", state: "状态", lastError: "最近错误",
    summary: "资源概况", byKind: "按类别", byStatus: "按状态", byOwner: "按业主",
    count: "设备数", online: "在线", search: "搜索名称、模板或业主", all: "全部",
    prev: "上一页", next: "下一页", of: "共", tz: "北京时间", open: "查看",
    request: "调用需求", offer: "申报", price: "价格", rule: "申报规则", quantiles: "申报明细",
    plan: "计划（目标）", metered: "实测负荷", paidBand: "有效响应区间", shares: "业主分摊",
    share: "占比", expected: "预期响应", pPenalty: "考核概率", limitedBy: "约束",
    replans: "计划与重新计划", created: "时间", reason: "原因", shortfall: "缺口",
    solve: "求解秒", settlements: "结算", version: "版本", baselineKwh: "基线电量 kWh",
    meteredKwh: "实测电量 kWh", responseKwh: "响应电量 kWh", performance: "完成率",
    penalty: "考核", fee: "服务费", ledger: "账本", account: "科目", entries: "分录",
    description: "说明", back: "全部事件", eventChart: "计划、基线、实测负荷与有效响应区间",
    performancePct: "完成率", measuredBy: "计量依据", direction: "方向", programme: "交易规则",
    noBand: "无区间", forecast: "未来 48 小时负荷预测与实测", forecastBand: "P10–P90",
    forecastMid: "预测 P50", actual: "实测", forecastOrigin: "预测时间",
    probeQueued: "等待连接网关……", probeRunning: "正在连接网关并读取每台设备……",
    probeDone: "网关已应答：{n} 台设备中 {ok} 台就绪，将参与响应。", probeFailed: "网关接入失败：{msg}",
    unitOk: "从站 {u}：已连接，读数正常，就绪。", unitBad: "从站 {u}：无法使用（{why}）。",
    earningsMonth: "按月收益", earningsEvent: "按事件收益", month: "月份", statement: "结算单",
    download: "下载",
    alerts: "告警", noAlerts: "暂无告警。", live: "实时", reconnecting: "重新连接中…",
    statusNames: { pending: "待接入", active: "运行", offline: "离线", quarantined: "隔离",
                   failed: "失败", retired: "退役", received: "已接收", accepted: "已接受",
                   rejected: "已拒绝", completed: "已完成", settled: "已结算",
                   unsettled: "未能结算", cancelled: "已取消", registered: "已登记", probing: "检测中" },
    eventStatusNames: { active: "进行中" },
    typeNames: { real_time: "实时", day_ahead: "日前", peak_shaving: "削峰", valley_filling: "填谷" },
    forecastStates: { ok: "正常", insufficient_history: "历史数据不足", error: "出错", not_run: "尚未运行" },
    kindNames: { commercial_building: "商业楼宇", industrial_load: "工业负荷",
                 ev_charger: "充电桩", battery: "储能" },
  },
};

const ZONE = "Asia/Shanghai";

const Vpp = {
  lang: localStorage.getItem("vpp.lang") || "zh",
  me: null,
  t(key, args) {
    const text = (I18N[Vpp.lang] || I18N.en)[key] || key;
    return args ? text.replace(/\{(\w+)\}/g, (_, k) => String(args[k] ?? "")) : text;
  },
  locale() { return Vpp.lang === "zh" ? "zh-CN" : "en-GB"; },
  kindName(k) { return (Vpp.t("kindNames") || {})[k] || k; },
  // a status cell: the word in the page's language, the class from the API's value
  status(v) { return { text: (Vpp.t("statusNames") || {})[v] || v, cls: "status-" + v }; },
  eventStatus(v) {
    return { text: (Vpp.t("eventStatusNames") || {})[v] || Vpp.status(v).text, cls: "status-" + v };
  },
  typeName(v) { return (Vpp.t("typeNames") || {})[v] || v; },
  applyLang() {
    document.documentElement.lang = Vpp.lang === "zh" ? "zh-CN" : "en";
    document.querySelectorAll("[data-i18n]").forEach((el) => {
      el.textContent = Vpp.t(el.dataset.i18n);
    });
    document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => {
      el.placeholder = Vpp.t(el.dataset.i18nPlaceholder);
    });
    Vpp.showSignedIn();
  },
  toggleLang() {
    Vpp.lang = Vpp.lang === "zh" ? "en" : "zh";
    localStorage.setItem("vpp.lang", Vpp.lang);
    Vpp.applyLang();
    document.dispatchEvent(new Event("vpp-lang"));
  },
  token() { return sessionStorage.getItem("vpp.token") || ""; },
  setToken(t) { if (t) sessionStorage.setItem("vpp.token", t); else sessionStorage.removeItem("vpp.token"); },
  async api(path, options = {}) {
    const headers = { Authorization: "Bearer " + Vpp.token() };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch("/api/v1" + path, {
      method: options.method || "GET", headers,
      body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
    });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error ? body.error.code + ": " + body.error.message : r.status);
    return body;
  },

  // -- numbers, powers, money, dates -------------------------------------------------------
  num(v, digits = 1) {
    if (v === null || v === undefined || Number.isNaN(Number(v))) return "–";
    return new Intl.NumberFormat(Vpp.locale(), { minimumFractionDigits: digits,
      maximumFractionDigits: digits }).format(Number(v));
  },
  fmt(v, digits = 1) { return Vpp.num(v, digits); },
  // kW below 1 MW (1 decimal), MW from 1 MW (2 decimals): 850.0 kW, 15.00 MW
  power(kw) {
    if (kw === null || kw === undefined) return "–";
    const v = Number(kw);
    return Math.abs(v) >= 1000 ? Vpp.num(v / 1000, 2) + " MW" : Vpp.num(v, 1) + " kW";
  },
  // kWh below 1 MWh (2 decimals), MWh from 1 MWh (3 decimals): 12.50 kWh, 1.250 MWh
  energy(kwh) {
    if (kwh === null || kwh === undefined) return "–";
    const v = Number(kwh);
    return Math.abs(v) >= 1000 ? Vpp.num(v / 1000, 3) + " MWh" : Vpp.num(v, 2) + " kWh";
  },
  // one unit for an axis or a table column: the largest magnitude decides
  powerUnit(values) {
    const big = values.some((v) => v !== null && v !== undefined && Math.abs(v) >= 1000);
    return big ? { unit: "MW", scale: 1000 } : { unit: "kW", scale: 1 };
  },
  yuan(text) {
    if (text === null || text === undefined) return "–";
    const v = Number(text);
    return (v < 0 ? "-¥" : "¥") + Vpp.num(Math.abs(v), 2);
  },
  pct(v, digits = 0) { return v === null || v === undefined ? "–" : Vpp.num(v, digits) + " %"; },
  parts(iso) {
    const p = {};
    new Intl.DateTimeFormat("en-GB", { timeZone: ZONE, year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" })
      .formatToParts(new Date(iso)).forEach((x) => { p[x.type] = x.value; });
    return p;
  },
  // 2026-12-08 14:00 CST (en) / 2026-12-08 14:00 北京时间 (zh): the year, never day/month order
  time(iso) {
    if (!iso) return "–";
    const p = Vpp.parts(iso);
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute} ${Vpp.t("tz")}`;
  },
  // a window: the date once when both ends are on the same day
  span(a, b) {
    const p = Vpp.parts(a), q = Vpp.parts(b);
    const day = (x) => `${x.year}-${x.month}-${x.day}`;
    const end = day(p) === day(q) ? `${q.hour}:${q.minute}` : `${day(q)} ${q.hour}:${q.minute}`;
    return `${day(p)} ${p.hour}:${p.minute}–${end} ${Vpp.t("tz")}`;
  },
  month(iso) { const p = Vpp.parts(iso); return `${p.year}-${p.month}`; },
  clock(ms) { const p = Vpp.parts(ms); return `${p.hour}:${p.minute}`; },

  // -- tables -----------------------------------------------------------------------------
  fillTable(tbody, rows) {
    tbody.replaceChildren(...rows.map((cells) => {
      const tr = document.createElement("tr");
      for (const c of cells) {
        const td = document.createElement("td");
        if (c instanceof Node) td.appendChild(c);
        else if (c && typeof c === "object") { td.textContent = c.text; td.className = c.cls || ""; }
        else td.textContent = c;
        tr.appendChild(td);
      }
      return tr;
    }));
  },
  link(href, text) { const a = document.createElement("a"); a.href = href; a.textContent = text; return a; },

  // -- signing in: one state at a time (signed out: the token box; signed in: who and sign out)
  showSignedIn() {
    const out = document.getElementById("signed-out"), inn = document.getElementById("signed-in");
    if (!out || !inn) return;
    out.classList.toggle("hidden", !!Vpp.me);
    inn.classList.toggle("hidden", !Vpp.me);
    const who = document.getElementById("who");
    if (who) who.textContent = Vpp.me ? Vpp.t("signedInAs") + ": " + (Vpp.me.owner_name
      || (Vpp.me.role === "operator" ? Vpp.t("operator") : Vpp.me.role)) : "";
  },
  signInForm(onSignedIn) {
    const input = document.getElementById("token");
    const err = document.getElementById("error");
    const accept = (me) => { Vpp.me = me; err.textContent = ""; Vpp.applyLang(); onSignedIn(me); };
    document.getElementById("signin-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      Vpp.setToken(input.value.trim());
      try { accept(await Vpp.api("/me")); input.value = ""; }
      catch (e) { err.textContent = e.message; Vpp.setToken(""); }
    });
    document.getElementById("signout").addEventListener("click", () => {
      Vpp.setToken(""); Vpp.me = null; location.reload();
    });
    document.getElementById("lang").addEventListener("click", Vpp.toggleLang);
    Vpp.applyLang();
    if (Vpp.token()) Vpp.api("/me").then(accept).catch(() => { Vpp.setToken(""); Vpp.showSignedIn(); });
  },

  // -- charts (Apache ECharts, shipped in vendor/echarts) ----------------------------------
  chart(el) {
    const c = echarts.getInstanceByDom(el) || echarts.init(el, null, { renderer: "canvas" });
    if (!el.dataset.resizeBound) {
      window.addEventListener("resize", () => c.resize());
      el.dataset.resizeBound = "1";
    }
    return c;
  },
  // HH:MM, or HH:MM:SS when the chart spans under ten minutes
  timeAxis(spanMs = Infinity) {
    const fmt = spanMs < 600000
      ? (v) => { const d = new Date(v); return Vpp.clock(v) + ":" + String(d.getUTCSeconds()).padStart(2, "0"); }
      : (v) => Vpp.clock(v);
    return { type: "time", axisLabel: { formatter: fmt, hideOverlap: true } };
  },
  powerAxis(unit) {
    return { type: "value", name: unit, scale: true,
      axisLabel: { formatter: (v) => Vpp.num(v, unit === "MW" ? 2 : 0) } };
  },
};
