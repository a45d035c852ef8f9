/* Regions: include (tumour area) and exclude (necrosis, artefact, control tissue) polygons drawn
 * with clicks; TPS hot spots per field. Scores count points inside include regions (anywhere
 * without any) and outside every exclude region. */

import { describeDetail, fetchJSON } from "../common/api.js";
import { hideConflict, saveRefused, setAddMode, showConflict, versionSaved } from "./corrections.js";
import { requestDraw } from "./draw.js";
import { imageZoom } from "./geometry.js";
import { $, S, api, cfg, debug, page, setText } from "./state.js";

export const REGION_COLORS = { tumour: "rgba(0, 170, 70, 0.95)", necrosis: "rgba(40, 40, 40, 0.95)",
                               artefact: "rgba(120, 60, 160, 0.95)", control: "rgba(0, 110, 200, 0.95)" };
const REGION_HELP = "Scores count points inside tumour areas (the whole slide without any) and outside exclusions.";

export function loadRegions() {
  const job = cfg.job;
  if (!job) { return Promise.resolve(); }
  return fetchJSON(api.regions(job)).then((res) => {
    if (!res.ok) { setText("region-line", "Regions unavailable: " + describeDetail(res.data, res.status)); return; }
    S.regions = debug.regions = res.data.items || [];
    showRegionList();
    requestDraw();
  }).catch((err) => { setText("region-line", "Regions unavailable: " + err); });
}

function showRegionList() {
  const list = $("region-list");
  list.innerHTML = "";
  S.regions.forEach((r) => {
    const li = document.createElement("li");
    li.dataset.region = r.id;
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = REGION_COLORS[r.kind] || "#888";
    li.appendChild(sw);
    li.appendChild(document.createTextNode(" " + r.kind + (r.include ? " (include)" : " (exclude)") +
      " · " + r.vertices.length + " vertices · " + r.author + " "));
    const del = document.createElement("button");
    del.type = "button";
    del.className = "region-delete";
    del.textContent = "Delete";
    del.addEventListener("click", () => { deleteRegion(r.id); });
    li.appendChild(del);
    list.appendChild(li);
  });
}

export function setDrawMode(on) {
  if (on && !cfg.job) { return; }
  S.drawing = debug.drawing = on ? { kind: $("region-kind").value, vertices: [] } : null;
  if (on) { setAddMode(false); }
  $("draw-region").setAttribute("aria-pressed", on ? "true" : "false");
  $("draw-region").classList.toggle("active", on);
  page.classList.toggle("drawing", on);
  setText("region-line", on ? "Click the vertices; double-click or Enter closes the region, Esc cancels." : REGION_HELP);
  requestDraw();
}

export function addVertex(p) {
  const drawing = S.drawing, info = S.info;
  if (!drawing || !info) { return; }
  const x = Math.min(Math.max(p.x, 0), info.width), y = Math.min(Math.max(p.y, 0), info.height);
  const v = drawing.vertices;
  const last = v[v.length - 1];
  const near = 3 / Math.max(imageZoom(), 1e-9); // 3 screen px: the clicks of a double-click
  if (last && Math.abs(last[0] - x) <= near && Math.abs(last[1] - y) <= near) { return; }
  v.push([Math.round(x * 10) / 10, Math.round(y * 10) / 10]);
  requestDraw();
}

export function finishRegion() {
  const drawing = S.drawing;
  if (!drawing) { return; }
  const body = { kind: drawing.kind, vertices: drawing.vertices.slice(), base_version: S.corrections.version };
  if (body.vertices.length < 3) {
    setText("region-line", "A region needs at least 3 vertices; keep clicking, or Esc to cancel.");
    return;
  }
  setDrawMode(false);
  hideConflict();
  return fetchJSON(api.regions(cfg.job), { body }).then((res) => {
    if (res.status === 201) { regionSaved(res.data); return true; }
    return saveRefused(res, "The region", "Someone else changed this slide's regions.");
  }).catch((err) => { showConflict("The region was not saved: " + err); });
}

export function deleteRegion(id) {
  hideConflict();
  const version = S.corrections.version;
  return fetchJSON(api.region(cfg.job, id, version), { method: "DELETE", body: { base_version: version } }).then((res) => {
    if (res.ok) { regionSaved(res.data); return true; }
    if (res.status === 409 && res.data && res.data.version !== undefined) { S.corrections.version = res.data.version; }
    showConflict("The region was not deleted: " + describeDetail(res.data, res.status));
    return false;
  }).catch((err) => { showConflict("The region was not deleted: " + err); });
}

function regionSaved(data) {
  versionSaved(data);
  loadRegions();
}

function tracePath(t, vertices, close) {
  const ctx = S.ctx, dpr = S.dpr;
  ctx.beginPath();
  vertices.forEach((v, i) => {
    const x = (t.a * v[0] + t.c * v[1] + t.e) * dpr, y = (t.b * v[0] + t.d * v[1] + t.f) * dpr;
    if (i === 0) { ctx.moveTo(x, y); } else { ctx.lineTo(x, y); }
  });
  if (close) { ctx.closePath(); }
}

export function drawRegions(t) {
  const ctx = S.ctx, dpr = S.dpr, drawing = S.drawing;
  ctx.save();
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.lineWidth = 2 * dpr;
  S.regions.forEach((r) => {
    const colour = REGION_COLORS[r.kind] || "rgba(128, 128, 128, 0.9)";
    tracePath(t, r.vertices, true);
    ctx.setLineDash(r.include ? [] : [8 * dpr, 5 * dpr]);
    ctx.strokeStyle = colour;
    ctx.stroke();
    if (!r.include) { ctx.fillStyle = "rgba(0, 0, 0, 0.18)"; ctx.fill(); }
  });
  if (drawing && drawing.vertices.length) {
    ctx.setLineDash([4 * dpr, 4 * dpr]);
    ctx.strokeStyle = REGION_COLORS[drawing.kind] || "#fff";
    tracePath(t, drawing.vertices, false);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = ctx.strokeStyle;
    drawing.vertices.forEach((v) => {
      ctx.beginPath();
      ctx.arc((t.a * v[0] + t.c * v[1] + t.e) * dpr, (t.b * v[0] + t.d * v[1] + t.f) * dpr, 3 * dpr, 0, 2 * Math.PI);
      ctx.fill();
    });
  }
  ctx.restore();
  return S.regions.length;
}

// ---- TPS hot spots ----------------------------------------------------------------------------
export function setHotspots(on) {
  S.layers.hotspots = on;
  $("layer-hotspots").checked = on;
  if (on && !S.hotspots) { loadHotspots(); }
  if (!on) { setText("hotspot-line", ""); }
  requestDraw();
}

export function loadHotspots() {
  if (!cfg.job || S.hotspotsLoading) { return; }
  S.hotspotsLoading = true;
  fetchJSON(api.hotspots(cfg.job)).then((res) => {
    if (!res.ok) { setText("hotspot-line", "Hot spots unavailable: " + describeDetail(res.data, res.status)); return; }
    S.hotspots = debug.hotspots = res.data;
    const top = res.data.top;
    setText("hotspot-line", top ? "Hot spot: TPS " + top.tps.toFixed(1) + " % (" + (top.positive + top.negative) +
      " tumour cells)" : "No field has " + res.data.min_cells + " tumour cells or more.");
  }).catch((err) => { setText("hotspot-line", "Hot spots unavailable: " + err); })
    .then(() => { S.hotspotsLoading = false; requestDraw(); });
}

export function drawHotspots(t) {
  const hotspots = S.hotspots, ctx = S.ctx, dpr = S.dpr;
  if (!S.layers.hotspots || !hotspots) { return 0; }
  const g = hotspots.field_px;
  let n = 0;
  ctx.save();
  ctx.setTransform(t.a * dpr, t.b * dpr, t.c * dpr, t.d * dpr, t.e * dpr, t.f * dpr);
  hotspots.tps.forEach((row, r) => {
    row.forEach((v, c) => {
      if (v === null) { return; }
      const f = v / 100; // blue (0 %) to red (100 %)
      ctx.fillStyle = "rgba(" + Math.round(255 * f) + ", 40, " + Math.round(255 * (1 - f)) + ", 0.35)";
      ctx.fillRect(c * g, r * g, g, g);
      n += 1;
    });
  });
  if (hotspots.top) {
    const top = hotspots.top;
    ctx.lineWidth = 3 / Math.max(imageZoom(), 1e-9);
    ctx.strokeStyle = "rgba(255, 0, 200, 0.95)";
    ctx.strokeRect(top.x0, top.y0, top.x1 - top.x0, top.y1 - top.y0);
  }
  ctx.restore();
  return n;
}

export function bindRegionTools() {
  $("draw-region").addEventListener("click", () => { setDrawMode(!S.drawing); });
  $("region-kind").addEventListener("change", (e) => {
    if (S.drawing) { S.drawing.kind = e.target.value; requestDraw(); }
  });
  $("layer-hotspots").addEventListener("change", (e) => { setHotspots(e.target.checked); });
}
