/* The points held for the current view: typed arrays filled from /points/ answers. */

import { osdToPlatform } from "../common/osd.js";
import { S } from "./state.js";

export function pointsFromResponse(data, box, job) {
  const xy = data.xy || [];
  const n = xy.length;
  const p = { n, xs: new Float32Array(n), ys: new Float32Array(n), labels: new Int8Array(n),
              scores: new Float32Array(n), ids: data.ids || [], corrected: [], box,
              total: data.total === undefined ? n : data.total, job };
  const labels = data.labels || [];
  const scores = data.scores || [];
  for (let i = 0; i < n; i++) {
    p.xs[i] = xy[i][0];
    p.ys[i] = xy[i][1];
    p.labels[i] = labels[i];
    p.scores[i] = scores[i] === undefined || scores[i] === null ? NaN : scores[i];
  }
  p.corrected = correctedFlags(data.corrected, p.ids, n);
  return p;
}

function correctedFlags(corrected, ids, n) {
  // "corrected" may be a per-point list of booleans or a list of ids of corrected points.
  const flags = new Array(n);
  if (!Array.isArray(corrected)) { return flags; }
  if (corrected.length === n && corrected.every((v) => typeof v === "boolean" || v === null)) {
    return corrected.slice();
  }
  const set = {};
  corrected.forEach((id) => { set[String(id)] = true; });
  for (let i = 0; i < n; i++) { flags[i] = !!set[String(ids[i])]; }
  return flags;
}

export function indexOfId(id) {
  const key = String(id);
  const pts = S.pts;
  for (let i = 0; i < pts.n; i++) {
    if (String(pts.ids[i]) === key) { return i; }
  }
  return -1;
}

export function appendPoint(x, y, label, score, id) {
  const pts = S.pts;
  const n = pts.n + 1;
  function grow(Type, old, value) { const a = new Type(n); a.set(old); a[n - 1] = value; return a; }
  pts.xs = grow(Float32Array, pts.xs, x);
  pts.ys = grow(Float32Array, pts.ys, y);
  pts.labels = grow(Int8Array, pts.labels, label);
  pts.scores = grow(Float32Array, pts.scores, score);
  pts.ids = pts.ids.concat([id]);
  pts.corrected = pts.corrected.concat([true]);
  pts.n = n;
}

/** The loaded point with `label` nearest the centre of the view (for tests). */
export function pointsNearCentre(label) {
  const pts = S.pts;
  if (!S.viewer || !pts.n) { return null; }
  const c = osdToPlatform(S.viewer.viewport.viewportToImageCoordinates(S.viewer.viewport.getCenter(true)));
  let best = null, bestD = Infinity;
  for (let i = 0; i < pts.n; i++) {
    if (pts.labels[i] !== label) { continue; }
    const dx = pts.xs[i] - c.x, dy = pts.ys[i] - c.y, dd = dx * dx + dy * dy;
    if (dd < bestD) { bestD = dd; best = { x: pts.xs[i], y: pts.ys[i], id: pts.ids[i], index: i }; }
  }
  return best;
}
