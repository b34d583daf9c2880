// A small line chart on a <canvas>: no library, no network. Series: [{name, color, values}].
"use strict";
function drawChart(canvas, times, series) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * dpr; canvas.height = h * dpr;
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  const pad = { l: 56, r: 12, t: 10, b: 26 };
  const all = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
  canvas.dataset.points = String(times.length);
  if (!times.length || !all.length) return;
  let lo = Math.min(...all), hi = Math.max(...all);
  if (hi - lo < 1e-6) { hi += 1; lo -= 1; }
  const span = hi - lo; lo -= span * 0.08; hi += span * 0.08;
  const t0 = times[0], t1 = times[times.length - 1] || t0 + 1;
  const x = (t) => pad.l + ((t - t0) / Math.max(t1 - t0, 1)) * (w - pad.l - pad.r);
  const y = (v) => pad.t + (1 - (v - lo) / (hi - lo)) * (h - pad.t - pad.b);
  g.strokeStyle = "#e5e8ec"; g.fillStyle = "#66717f"; g.font = "11px sans-serif"; g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    g.beginPath(); g.moveTo(pad.l, y(v)); g.lineTo(w - pad.r, y(v)); g.stroke();
    g.fillText(v.toFixed(1), 4, y(v) + 4);
  }
  const fmt = (t) => new Date(t).toLocaleTimeString("en-GB", { timeZone: "Asia/Shanghai", hour12: false });
  g.fillText(fmt(t0), pad.l, h - 8);
  g.fillText(fmt(t1), w - pad.r - 50, h - 8);
  for (const s of series) {
    g.strokeStyle = s.color; g.lineWidth = s.width || 2; g.setLineDash(s.dash || []);
    g.beginPath();
    let pen = false;
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) { pen = false; return; }
      if (!pen) { g.moveTo(x(times[i]), y(v)); pen = true; } else g.lineTo(x(times[i]), y(v));
    });
    g.stroke();
  }
  g.setLineDash([]);
}
