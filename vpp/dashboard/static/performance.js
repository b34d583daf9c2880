// The VPP's performance record under its programme (GET /api/v1/performance): the state (good,
// warned, suspended, expelled) and since when, the remedy deadline while suspended, why bids are
// refused, and the last failed responses. The rule behind each change is the server's sentence
// (English); everything else follows the page's language. Refreshed every minute: the record
// moves when an event is settled or a remedy recorded.
"use strict";
Object.assign(I18N.en, {
  perfTitle: "Performance record", perfSince: "since {d}", perfDeadline: "Remedy by {d}",
  perfCounts: "{f} failed response(s) in {w} months (warning at {warn}, suspension at {sus}); {s} suspension(s) in {sw} months",
  perfAwaiting: "Reinstated: the next response must pass.", perfNoRules: "The programme keeps no performance record.",
  perfRefused: "Bids refused", perfDay: "Day", perfFloor: "Band floor", perfStateAfter: "State after",
  perfNoFailures: "No failed response.",
  perfStates: { good: "good", warned: "warned", suspended: "suspended", expelled: "expelled" },
});
Object.assign(I18N.zh, {
  perfTitle: "履约记录", perfSince: "自 {d} 起", perfDeadline: "整改期限 {d}",
  perfCounts: "近 {w} 个月未有效响应 {f} 次（{warn} 次警告，{sus} 次暂停）；近 {sw} 个月暂停 {s} 次",
  perfAwaiting: "已恢复：下一次响应须合格。", perfNoRules: "该交易规则不设履约记录。",
  perfRefused: "暂停申报", perfDay: "日期", perfFloor: "有效下限", perfStateAfter: "之后状态",
  perfNoFailures: "无未有效响应。",
  perfStates: { good: "正常", warned: "警告", suspended: "暂停", expelled: "强制退出" },
});

const Performance = {
  last: null,
  timer: null,
  LAST_FAILED: 5,
  async refresh() {
    try { Performance.last = await Vpp.api("/performance"); Performance.show(); }
    catch (e) { document.getElementById("perf-detail").textContent = e.message; }
  },
  stateName(s) { return (Vpp.t("perfStates") || {})[s] || s; },
  show() {
    const r = Performance.last;
    if (!r) return;
    const state = document.getElementById("perf-state");
    state.textContent = Performance.stateName(r.state);
    state.className = "perf-" + r.state;
    state.dataset.state = r.state;
    document.getElementById("perf-since").textContent = r.since ? Vpp.t("perfSince", { d: r.since }) : "";
    const deadline = document.getElementById("perf-deadline");
    deadline.textContent = r.remedy_deadline ? Vpp.t("perfDeadline", { d: r.remedy_deadline }) : "";
    const k = r.rules;
    document.getElementById("perf-detail").textContent = !k ? Vpp.t("perfNoRules")
      : Vpp.t("perfCounts", { f: r.failures_in_window, w: k.failure_window_months,
        warn: k.warn_after_failures, sus: k.suspend_after_failures, s: r.suspensions_in_window,
        sw: k.suspension_window_months }) + (r.awaiting_first_response ? " " + Vpp.t("perfAwaiting") : "");
    document.getElementById("perf-reason").textContent = r.refuses_bids
      ? Vpp.t("perfRefused") + ": " + r.reason : "";
    const failed = r.events.filter((e) => !e.passed).slice(-Performance.LAST_FAILED).reverse();
    Vpp.fillTable(document.getElementById("perf-failed"), failed.map((e) => [
      Vpp.link("/dashboard/event.html?id=" + e.event_id, "#" + e.event_id), e.day,
      Vpp.pct(100 * e.performance_ratio), Vpp.pct(100 * Number(e.floor_ratio)),
      { text: Performance.stateName(e.state_after), cls: "perf-" + e.state_after },
    ]));
    document.getElementById("perf-no-failures").classList.toggle("hidden", failed.length > 0);
  },
  start() {
    if (Performance.timer) clearInterval(Performance.timer);
    Performance.refresh();
    Performance.timer = setInterval(Performance.refresh, 60000);
  },
};
document.addEventListener("vpp-lang", () => Performance.show());
