// Shared by both pages: language switching, the bearer token (sessionStorage only), API calls.
"use strict";
const I18N = {
  en: {
    title: "Xiang VPP", operator: "Operator", owner: "Owner", token: "API token", signin: "Sign in",
    signout: "Sign out", lang: "中文", devicesOnline: "Devices online", fleetPower: "Fleet power",
    activeEvent: "Active event", declared: "Declared", delivered: "Delivered", none: "none",
    chart: "Fleet power against baseline and target", power: "Fleet power", baseline: "Baseline",
    target: "Target", events: "Events", devices: "Devices", id: "ID", external: "External id",
    source: "Source", type: "Type", window: "Window", requested: "Requested", revenue: "Revenue",
    status: "Status", name: "Name", kind: "Kind", ownerCol: "Owner", setpoint: "Setpoint",
    soc: "SoC", signedInAs: "Signed in as", enrol: "Enrol a gateway", site: "Site",
    host: "Host", port: "Port", profile: "Profile", unitIds: "Unit ids (1,2,5-7)",
    rated: "Rated kW", minKw: "Min setpoint kW", maxKw: "Max setpoint kW",
    params: "Parameters (JSON)", submit: "Enrol and probe", probe: "Probe", payouts: "Payouts",
    amount: "Amount (yuan)", event: "Event", contribution: "Contribution kWh",
    myDevices: "My devices", myEvents: "My events", needToken: "Enter a token to sign in.",
    gateways: "Gateways", state: "State", lastError: "Last error", kw: "kW",
  },
  zh: {
    title: "湘能虚拟电厂", operator: "运营", owner: "业主", token: "访问令牌", signin: "登录",
    signout: "退出", lang: "English", devicesOnline: "在线设备", fleetPower: "聚合功率",
    activeEvent: "当前事件", declared: "申报容量", delivered: "实际响应", none: "无",
    chart: "聚合功率、基线与目标", power: "聚合功率", baseline: "基线", target: "目标",
    events: "响应事件", devices: "设备", id: "编号", external: "外部编号", source: "来源",
    type: "类型", window: "时段", requested: "需求", revenue: "收益", status: "状态",
    name: "名称", kind: "类别", ownerCol: "业主", setpoint: "设定值", soc: "荷电状态",
    signedInAs: "当前用户", enrol: "接入网关", site: "站点", host: "主机", port: "端口",
    profile: "设备模板", unitIds: "从站地址（1,2,5-7）", rated: "额定功率 kW",
    minKw: "最小设定 kW", maxKw: "最大设定 kW", params: "参数（JSON）", submit: "接入并检测",
    probe: "检测", payouts: "收益分配", amount: "金额（元）", event: "事件",
    contribution: "贡献电量 kWh", myDevices: "我的设备", myEvents: "我的事件",
    needToken: "请输入令牌登录。", gateways: "网关", state: "状态", lastError: "最近错误",
    kw: "千瓦",
  },
};

const Vpp = {
  lang: localStorage.getItem("vpp.lang") || "zh",
  t(key) { return (I18N[Vpp.lang] || I18N.en)[key] || key; },
  applyLang() {
    document.documentElement.lang = Vpp.lang === "zh" ? "zh-CN" : "en";
    document.querySelectorAll("[data-i18n]").forEach((el) => {
      el.textContent = Vpp.t(el.dataset.i18n);
    });
    document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => {
      el.placeholder = Vpp.t(el.dataset.i18nPlaceholder);
    });
    const who = document.getElementById("who");
    if (who && Vpp.me) who.textContent = Vpp.t("signedInAs") + ": " + (Vpp.me.owner_name || Vpp.me.role);
  },
  me: null,
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
  fmt(v, digits = 1) { return v === null || v === undefined ? "–" : Number(v).toFixed(digits); },
  time(iso) {
    const d = new Date(iso);
    return d.toLocaleString(Vpp.lang === "zh" ? "zh-CN" : "en-GB",
      { timeZone: "Asia/Shanghai", hour12: false, month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit" });
  },
  fillTable(tbody, rows) {
    tbody.replaceChildren(...rows.map((cells) => {
      const tr = document.createElement("tr");
      for (const c of cells) {
        const td = document.createElement("td");
        if (c && typeof c === "object") { td.textContent = c.text; td.className = c.cls || ""; }
        else td.textContent = c;
        tr.appendChild(td);
      }
      return tr;
    }));
  },
  signInForm(onSignedIn) {
    const input = document.getElementById("token");
    const err = document.getElementById("error");
    document.getElementById("signin").addEventListener("click", async () => {
      Vpp.setToken(input.value.trim());
      try {
        Vpp.me = await Vpp.api("/me"); err.textContent = ""; input.value = "";
        Vpp.applyLang(); onSignedIn(Vpp.me);
      }
      catch (e) { err.textContent = e.message; Vpp.setToken(""); }
    });
    document.getElementById("lang").addEventListener("click", Vpp.toggleLang);
    Vpp.applyLang();
    if (Vpp.token()) {
      Vpp.api("/me").then((me) => { Vpp.me = me; Vpp.applyLang(); onSignedIn(me); })
        .catch(() => Vpp.setToken(""));
    }
  },
};
