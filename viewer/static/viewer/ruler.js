/* The ruler: two clicks measure a straight distance in µm (level-0 px times the slide's mpp);
 * a third click starts a new measurement, Esc or the button ends it. */

import { requestDraw } from "./draw.js";
import { toDevice } from "./geometry.js";
import { $, S, debug, page, setText } from "./state.js";

export function setRuler(on) {
  S.ruler = on ? { on: true, a: null, b: null } : null;
  debug.ruler = null;
  $("ruler").setAttribute("aria-pressed", on ? "true" : "false");
  $("ruler").classList.toggle("active", on);
  page.classList.toggle("measuring", on);
  setText("tool-status", on ? (mpp() ? "Ruler: click the start, then the end." : "Ruler: this slide has no µm/px; distances in px.") : "");
  requestDraw();
}

function mpp() {
  const info = S.info || {};
  return info.mpp_x ? { x: info.mpp_x, y: info.mpp_y || info.mpp_x } : null;
}

/** The distance between two level-0 points, in µm (null without a resolution) and px. */
export function measure(a, b) {
  const dx = b[0] - a[0], dy = b[1] - a[1];
  const m = mpp();
  return { px: Math.hypot(dx, dy), um: m ? Math.hypot(dx * m.x, dy * m.y) : null };
}

export function formatLength(d) {
  if (d.um === null) { return d.px.toFixed(0) + " px"; }
  return d.um >= 1000 ? (d.um / 1000).toFixed(2) + " mm" : d.um.toFixed(1) + " µm";
}

export function rulerClick(p) {
  const r = S.ruler;
  if (!r) { return; }
  const point = [Math.round(p.x * 10) / 10, Math.round(p.y * 10) / 10];
  if (!r.a || r.b) {
    r.a = point;
    r.b = null;
    debug.ruler = null;
    setText("tool-status", "Ruler: now click the end.");
  } else {
    r.b = point;
    const d = measure(r.a, r.b);
    debug.ruler = { a: r.a, b: r.b, um: d.um, px: d.px, text: formatLength(d) };
    setText("tool-status", "Distance: " + formatLength(d));
  }
  requestDraw();
}

export function drawRuler(t) {
  const r = S.ruler, ctx = S.ctx, dpr = S.dpr;
  if (!r || !r.a) { return; }
  const a = toDevice(t, r.a[0], r.a[1]);
  const b = r.b ? toDevice(t, r.b[0], r.b[1]) : a;
  ctx.save();
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.lineCap = "round";
  [["rgba(0, 0, 0, 0.7)", 5], ["#ffffff", 2.5]].forEach(([colour, width]) => {
    ctx.strokeStyle = colour;
    ctx.lineWidth = width * dpr;
    ctx.beginPath();
    ctx.moveTo(a.x, a.y);
    ctx.lineTo(b.x, b.y);
    [a, b].forEach((q) => { ctx.moveTo(q.x + 6 * dpr, q.y); ctx.arc(q.x, q.y, 6 * dpr, 0, 2 * Math.PI); });
    ctx.stroke();
  });
  if (r.b) {
    const text = formatLength(measure(r.a, r.b));
    ctx.font = (13 * dpr) + "px system-ui, sans-serif";
    const w = ctx.measureText(text).width;
    const mx = (a.x + b.x) / 2 + 8 * dpr, my = (a.y + b.y) / 2 - 8 * dpr;
    ctx.fillStyle = "rgba(0, 0, 0, 0.75)";
    ctx.fillRect(mx - 4 * dpr, my - 14 * dpr, w + 8 * dpr, 19 * dpr);
    ctx.fillStyle = "#ffffff";
    ctx.fillText(text, mx, my);
  }
  ctx.restore();
}

export function bindRuler() {
  $("ruler").addEventListener("click", () => { setRuler(!(S.ruler && S.ruler.on)); });
}
