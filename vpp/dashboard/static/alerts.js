// Alerts pushed by the daemon over a WebSocket (/dashboard/alerts): gateways offline, an open
// event's plan short of its offer, devices out of their setpoint. The page sends its token as
// the first message (a browser WebSocket cannot send headers); the server sends the whole list
// when it changes. Reconnects after a dropped connection, not after a refused token.
"use strict";
const AlertFeed = {
  ws: null,
  list: [],
  state: "",
  retry: null,
  kindText: {
    en: { gateway_offline: "Gateway offline", event_shortfall: "Shortfall in an event",
          device_out_of_limits: "Device out of limits" },
    zh: { gateway_offline: "网关离线", event_shortfall: "事件响应缺口", device_out_of_limits: "设备越限" },
  },
  connect() {
    if (AlertFeed.ws) return;
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/dashboard/alerts";
    const ws = new WebSocket(url);
    AlertFeed.ws = ws;
    ws.onopen = () => { ws.send(JSON.stringify({ token: Vpp.token() })); AlertFeed.show("live"); };
    ws.onmessage = (m) => {
      const body = JSON.parse(m.data);
      if (body.error) { AlertFeed.show(body.error); return; }
      AlertFeed.list = body.alerts; AlertFeed.show("live");
    };
    ws.onclose = (ev) => {
      AlertFeed.ws = null;
      if (ev.code >= 4400 && ev.code < 4500) { AlertFeed.show(ev.reason || String(ev.code)); return; }
      AlertFeed.show("reconnecting");
      clearTimeout(AlertFeed.retry);
      AlertFeed.retry = setTimeout(AlertFeed.connect, 3000);
    };
  },
  show(state) {
    if (state) AlertFeed.state = state;
    const st = document.getElementById("alerts-state");
    st.textContent = ["live", "reconnecting"].includes(AlertFeed.state) ? Vpp.t(AlertFeed.state) : AlertFeed.state;
    st.className = AlertFeed.state === "live" ? "status-active" : "status-offline";
    const names = AlertFeed.kindText[Vpp.lang] || AlertFeed.kindText.en;
    const ul = document.getElementById("alerts");
    ul.replaceChildren(...AlertFeed.list.map((a) => {
      const li = document.createElement("li");
      li.className = "alert-" + a.kind;
      li.dataset.subject = a.subject;
      const b = document.createElement("b");
      b.textContent = names[a.kind] || a.kind;
      li.append(b, document.createTextNode(" · " + a.message + (a.since ? " · " + Vpp.time(a.since) : "")));
      return li;
    }));
    document.getElementById("no-alerts").classList.toggle("hidden", AlertFeed.list.length > 0);
    document.getElementById("alert-count").textContent = AlertFeed.list.length ? String(AlertFeed.list.length) : "";
  },
};
document.addEventListener("vpp-lang", () => { if (AlertFeed.state) AlertFeed.show(); });
