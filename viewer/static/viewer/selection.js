/* Clicking the slide: select a detection (class and score shown), or hand the click to the
 * active tool (region drawing, add mode, ruler). */

import { fetchJSON } from "../common/api.js";
import { sendCorrection } from "./corrections.js";
import { pointRadius, requestDraw } from "./draw.js";
import { affine, platformAt } from "./geometry.js";
import { indexOfId } from "./points.js";
import { addVertex } from "./regions.js";
import { rulerClick } from "./ruler.js";
import { $, LABEL_NAME, NEGATIVE, POSITIVE, S, api, cfg, debug, setText } from "./state.js";

export function onCanvasClick(e) {
  if (!e.quick || !S.info) { return; }
  e.preventDefaultAction = true;
  const pos = e.position;
  const info = S.info;
  if (S.drawing) {
    addVertex(platformAt(pos));
    return;
  }
  if (S.ruler && S.ruler.on) {
    rulerClick(platformAt(pos));
    return;
  }
  if (S.editing) { return; } // vertices move by dragging; a click does nothing else meanwhile
  if (S.addMode) {
    if (!cfg.job) { return; }
    // A click on a point already there selects it: adding another would count that cell twice (the
    // server refuses an add within 3 µm of a live point too, and names it: selectPointId below).
    const onPoint = hitTest(pos.x, pos.y);
    if (onPoint >= 0) {
      select(onPoint);
      setText("tool-status", "A point is already here: selected instead of adding another (1/2 reclassify it).");
      requestDraw();
      return;
    }
    const p = platformAt(pos); // the pixel-centre convention of the stored detections
    if (p.x < 0 || p.y < 0 || p.x >= info.width || p.y >= info.height) { return; } // as the server refuses it
    sendCorrection({ op: "add", x: Math.round(p.x * 10) / 10, y: Math.round(p.y * 10) / 10,
                     label: Number($("add-label").value) });
    return;
  }
  const hit = hitTest(pos.x, pos.y);
  if (hit < 0) {
    S.selected = null;
    showSelection();
  } else {
    select(hit);
  }
  requestDraw();
}

function hitTest(sx, sy) {
  if (debug.mode !== "points") { return -1; }
  const pts = S.pts, layers = S.layers;
  const t = affine();
  let best = -1;
  const limit = pointRadius() + 6;
  let bestD = limit * limit;
  for (let i = 0; i < pts.n; i++) {
    const label = pts.labels[i];
    if (!((label === POSITIVE && layers.positive) || (label === NEGATIVE && layers.negative))) { continue; }
    const x = t.a * pts.xs[i] + t.c * pts.ys[i] + t.e - sx;
    const y = t.b * pts.xs[i] + t.d * pts.ys[i] + t.f - sy;
    const dd = x * x + y * y;
    if (dd <= bestD) { bestD = dd; best = i; }
  }
  return best;
}

/** Select a point by its id when it is loaded (the server named it); false when it is not. */
export function selectPointId(id) {
  const i = indexOfId(id);
  if (i < 0) { return false; }
  select(i);
  requestDraw();
  return true;
}

export function select(i) {
  const pts = S.pts;
  S.selected = { index: i, id: pts.ids[i], x: pts.xs[i], y: pts.ys[i], label: pts.labels[i],
                 score: pts.scores[i], corrected: !!pts.corrected[i] };
  showSelection();
  // The detail endpoint is the authority (corrections applied); refresh what is shown.
  const selected = S.selected;
  if (cfg.job && selected.id !== undefined && selected.id !== null && !/^new-/.test(String(selected.id))) {
    const asked = selected;
    fetchJSON(api.point(cfg.job, asked.id)).then((res) => {
      if (!res.ok || S.selected !== asked) { return; }
      asked.label = res.data.label;
      asked.score = res.data.score;
      asked.corrected = !!res.data.corrected;
      asked.x = res.data.x;
      asked.y = res.data.y;
      showSelection();
      requestDraw();
    }).catch(() => { /* the local values stay shown */ });
  }
}

export function showSelection() {
  const selected = S.selected;
  debug.selected = selected;
  const has = !!selected;
  $("selection").hidden = !has;
  $("selection-empty").hidden = has;
  $("reclass-positive").disabled = !has || selected.label === POSITIVE;
  $("reclass-negative").disabled = !has || selected.label === NEGATIVE;
  $("delete-detection").disabled = !has;
  if (!has) { return; }
  const cls = LABEL_NAME[selected.label] || "label " + selected.label;
  $("sel-class").innerHTML = "";
  const sw = document.createElement("span");
  sw.className = "swatch " + cls;
  $("sel-class").appendChild(sw);
  $("sel-class").appendChild(document.createTextNode(cls + (selected.corrected ? " (corrected)" : "")));
  setText("sel-score", selected.score === null || selected.score === undefined || isNaN(selected.score)
    ? "—" : Number(selected.score).toFixed(3));
  setText("sel-pos", Math.round(selected.x) + ", " + Math.round(selected.y) + " px");
  setText("sel-id", String(selected.id));
}
