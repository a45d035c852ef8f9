/* Regions: include (tumour area) and exclude (necrosis, artefact, control tissue) polygons drawn
 * with clicks; TPS hot spots per field. Scores count points inside include regions (anywhere
 * without any) and outside every exclude region. */

import { describeDetail, fetchJSON } from "../common/api.js";
import { hideConflict, saveRefused, setAddMode, showConflict, versionSaved, versionUnknown } from "./corrections.js";
import { requestDraw } from "./draw.js";
import { recordEdit } from "./history.js";
import { imageZoom, platformAt, screenAt } from "./geometry.js";
import { $, S, api, cfg, debug, page, setText } from "./state.js";
import { queueSave, updateUnloadGuard } from "./unsaved.js";

export const REGION_COLORS = { tumour: "rgba(0, 170, 70, 0.95)", necrosis: "rgba(40, 40, 40, 0.95)",
                               artefact: "rgba(120, 60, 160, 0.95)", control: "rgba(0, 110, 200, 0.95)" };
const REGION_HELP = "Scores count points inside tumour areas (the whole slide without any) and outside exclusions.";

/** Refresh the region list (after this page's own save: their counts changed). The version is not taken
 * from it: the page's version comes from loadHumanLayer (corrections.js), where both lists agree on it. */
export function loadRegions() {
  const job = cfg.job;
  if (!job) { return Promise.resolve(); }
  return fetchJSON(api.regions(job)).then(showRegionsAnswer)
    .catch((err) => { setText("region-line", "Regions unavailable: " + err); });
}

/** Show a GET regions answer ({ok, status, data}); false when it is an error (shown). */
export function showRegionsAnswer(res) {
  if (!res.ok) { setText("region-line", "Regions unavailable: " + describeDetail(res.data, res.status)); return false; }
  S.regions = debug.regions = res.data.items || [];
  showRegionList();
  requestDraw();
  return true;
}

/** Polygon area in mm² (level-0 px × the slide's µm/px), null without a resolution. */
export function areaMm2(vertices) {
  const info = S.info || {};
  if (!info.mpp_x) { return null; }
  let twice = 0;
  for (let i = 0; i < vertices.length; i++) {
    const p = vertices[i], q = vertices[(i + 1) % vertices.length];
    twice += p[0] * q[1] - q[0] * p[1];
  }
  return Math.abs(twice) / 2 * info.mpp_x * (info.mpp_y || info.mpp_x) / 1e6;
}

function regionFacts(r) {
  // Counts and TPS per region come from the server when it gives them (the viewer API's region
  // items); the area is the polygon's, in mm², with the server's value preferred. A tumour area's counts,
  // TPS and area leave out the exclusions inside it (viewer.regions.region_stats): both areas are shown then.
  const parts = [r.vertices.length + " vertices"];
  const area = r.area_mm2 !== undefined && r.area_mm2 !== null ? r.area_mm2 : areaMm2(r.vertices);
  const mm2 = (a) => a.toFixed(a < 0.1 ? 4 : 3) + " mm²";
  if (area !== null) {
    const outline = r.outline_area_mm2;
    parts.push(outline !== undefined && outline !== null && outline !== area
      ? mm2(area) + " counted (" + mm2(outline) + " outlined, less exclusions)" : mm2(area));
  }
  const counts = r.counts || null;
  if (counts && counts.positive !== undefined) {
    parts.push(counts.positive + " positive, " + counts.negative + " negative");
  }
  if (r.tps !== undefined && r.tps !== null) { parts.push("TPS " + Number(r.tps).toFixed(2) + " %"); }
  return parts.join(" · ");
}

function button(text, className, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
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
    li.appendChild(document.createTextNode(" " + r.kind + (r.include ? " (include)" : " (exclude)") + " · " + r.author + " "));
    const facts = document.createElement("span");
    facts.className = "region-facts";
    facts.textContent = regionFacts(r);
    li.appendChild(facts);
    li.appendChild(document.createTextNode(" "));
    if (S.editing && S.editing.id === r.id) {
      li.appendChild(button("Save vertices", "region-save", saveEdit));
      li.appendChild(button("Cancel", "region-cancel", () => { stopEdit(); }));
    } else {
      li.appendChild(button("Edit vertices", "region-edit", () => { startEdit(r.id); }));
      li.appendChild(button("Delete", "region-delete", () => { deleteRegion(r.id); }));
    }
    list.appendChild(li);
  });
}

// ---- editing a region's vertices: drag a vertex; double-click an edge adds one ---------------
const HANDLE_PX = 9;

export function startEdit(id) {
  const r = S.regions.find((x) => x.id === id);
  if (!r || S.drawing) { return; }
  setAddMode(false);
  S.editing = debug.editing = { id, kind: r.kind, original: r.vertices, vertices: r.vertices.map((v) => v.slice()), grabbed: -1 };
  page.classList.add("editing");
  setText("tool-status", "Drag a vertex to move it, double-click an edge to add one; Enter or Save keeps, Esc cancels.");
  showRegionList();
  requestDraw();
  updateUnloadGuard();
}

export function stopEdit() {
  if (!S.editing) { return; }
  S.editing = debug.editing = null;
  page.classList.remove("editing");
  setText("tool-status", "");
  showRegionList();
  requestDraw();
  updateUnloadGuard();
}

export function saveEdit() {
  const e = S.editing;
  if (!e) { return Promise.resolve(false); }
  const unchanged = e.vertices.length === e.original.length &&
    e.vertices.every((v, i) => v[0] === e.original[i][0] && v[1] === e.original[i][1]);
  stopEdit();
  if (unchanged) { return Promise.resolve(false); }
  const before = { region: { kind: e.kind, vertices: e.original.map((v) => v.slice()) }, id: e.id };
  const after = { region: { kind: e.kind, vertices: e.vertices }, id: null };
  // The edited polygon replaces the old region in one save (POST with `replaces`: the old stays in the
  // history); a refused save (a colleague's change, a self-intersecting outline) changes neither outline.
  return postRegion(after.region, e.id).then((item) => {
    if (!item) { return false; }
    after.id = item.id;
    recordEdit({ kind: "region-edit", before, after });
    return true;
  });
}

export function onEditPress(e) {
  const ed = S.editing;
  if (!ed) { return false; }
  let best = -1, bestD = HANDLE_PX * HANDLE_PX;
  ed.vertices.forEach((v, i) => {
    const s = screenAt(v[0], v[1]), dx = s.x - e.position.x, dy = s.y - e.position.y;
    if (dx * dx + dy * dy <= bestD) { bestD = dx * dx + dy * dy; best = i; }
  });
  ed.grabbed = best;
  return best >= 0;
}

export function onEditDrag(e) {
  const ed = S.editing;
  if (!ed || ed.grabbed < 0) { return false; }
  e.preventDefaultAction = true; // move the vertex, not the slide
  const p = platformAt(e.position);
  const info = S.info;
  ed.vertices[ed.grabbed] = [Math.round(Math.min(Math.max(p.x, 0), info.width) * 10) / 10,
                             Math.round(Math.min(Math.max(p.y, 0), info.height) * 10) / 10];
  requestDraw();
  updateUnloadGuard();
  return true;
}

export function onEditRelease() {
  if (S.editing) { S.editing.grabbed = -1; }
}

export function onEditDoubleClick(e) {
  const ed = S.editing;
  if (!ed) { return false; }
  e.preventDefaultAction = true;
  const p = platformAt(e.position);
  let best = 0, bestD = Infinity;
  ed.vertices.forEach((v, i) => { // the edge nearest the click gets the new vertex
    const w = ed.vertices[(i + 1) % ed.vertices.length];
    const dx = w[0] - v[0], dy = w[1] - v[1], len = dx * dx + dy * dy || 1;
    const k = Math.max(0, Math.min(1, ((p.x - v[0]) * dx + (p.y - v[1]) * dy) / len));
    const d = Math.hypot(v[0] + k * dx - p.x, v[1] + k * dy - p.y);
    if (d < bestD) { bestD = d; best = i; }
  });
  ed.vertices.splice(best + 1, 0, [Math.round(p.x * 10) / 10, Math.round(p.y * 10) / 10]);
  requestDraw();
  updateUnloadGuard();
  return true;
}

export function setDrawMode(on) {
  if (on && (!cfg.job || S.editing)) { return; }
  S.drawing = debug.drawing = on ? { kind: $("region-kind").value, vertices: [] } : null;
  if (on) { setAddMode(false); }
  $("draw-region").setAttribute("aria-pressed", on ? "true" : "false");
  $("draw-region").classList.toggle("active", on);
  page.classList.toggle("drawing", on);
  setText("region-line", on ? "Click the vertices; double-click or Enter closes the region, Esc cancels." : REGION_HELP);
  requestDraw();
  updateUnloadGuard();
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
  updateUnloadGuard();
}

export function finishRegion() {
  const drawing = S.drawing;
  if (!drawing) { return; }
  const region = { kind: drawing.kind, vertices: drawing.vertices.slice() };
  if (region.vertices.length < 3) {
    setText("region-line", "A region needs at least 3 vertices; keep clicking, or Esc to cancel.");
    return;
  }
  setDrawMode(false);
  return postRegion(region).then((item) => {
    if (item) { recordEdit({ kind: "region-add", region, id: item.id }); }
    return !!item;
  });
}

/** Save a region {kind, vertices}, in place of region `replaces` when given (one save: both or neither),
 * after this page's saves before it (unsaved.js); resolves to the server's item, or null when refused or not sent
 * (shown). */
export function postRegion(region, replaces) {
  const job = cfg.job;
  const what = replaces !== undefined && replaces !== null ? "the vertex edit of " + region.kind + " region " + replaces
    : "the " + region.kind + " region drawn (" + region.vertices.length + " vertices)";
  return queueSave((signal) => {
    if (cfg.job !== job || versionUnknown("The region")) { return null; }
    hideConflict();
    // base_version as of now: the answer of the save before this one, not the version when it was drawn.
    const body = { kind: region.kind, vertices: region.vertices, base_version: S.corrections.version };
    if (replaces !== undefined && replaces !== null) { body.replaces = replaces; }
    return fetchJSON(api.regions(job), { body, signal }).then((res) => {
      if (res.status === 201) { regionSaved(res.data); return res.data.item || {}; }
      saveRefused(res, "The region", "Someone else changed this slide's regions.");
      return null;
    }).catch((err) => { showConflict("The region was not saved: " + err); return null; });
  }, what, null);
}

/** Soft-delete a region, after this page's saves before it; resolves to true, or false when refused or not
 * sent (shown). */
export function removeRegion(id) {
  const job = cfg.job;
  return queueSave((signal) => {
    if (cfg.job !== job || versionUnknown("The region deletion")) { return false; }
    hideConflict();
    const version = S.corrections.version;
    return fetchJSON(api.region(job, id, version), { method: "DELETE", body: { base_version: version }, signal }).then((res) => {
      if (res.ok) { regionSaved(res.data); return true; }
      // A 409 keeps this page's version (saveRefused): it has not seen the colleague's change, so the next save
      // must be refused too until "Reload corrections" shows it.
      return saveRefused(res, "The region deletion", "Someone else changed this slide's regions.");
    }).catch((err) => { showConflict("The region was not deleted: " + err); return false; });
  }, "the deletion of region " + id, false);
}

/** The list's Delete button: undoable. */
export function deleteRegion(id) {
  const r = S.regions.find((x) => x.id === id);
  const region = r ? { kind: r.kind, vertices: r.vertices.map((v) => v.slice()) } : null;
  return removeRegion(id).then((ok) => {
    if (ok && region) { recordEdit({ kind: "region-delete", region, id }); }
    return ok;
  });
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
  const editing = S.editing;
  S.regions.forEach((r) => {
    const colour = REGION_COLORS[r.kind] || "rgba(128, 128, 128, 0.9)";
    tracePath(t, editing && editing.id === r.id ? editing.vertices : r.vertices, true);
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
  if (editing) { // vertex handles
    ctx.setLineDash([]);
    ctx.lineWidth = 1.5 * dpr;
    editing.vertices.forEach((v, i) => {
      const x = (t.a * v[0] + t.c * v[1] + t.e) * dpr, y = (t.b * v[0] + t.d * v[1] + t.f) * dpr, h = 5 * dpr;
      ctx.fillStyle = i === editing.grabbed ? "#ffd400" : "#ffffff";
      ctx.strokeStyle = "#111111";
      ctx.fillRect(x - h, y - h, 2 * h, 2 * h);
      ctx.strokeRect(x - h, y - h, 2 * h, 2 * h);
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
    // A field is a candidate only with at least min_coverage of it in the counted area (viewer.hotspots):
    // the regions, else the tissue; the line says which, and why when the tissue could not be read.
    const coverage = res.data.coverage || {};
    const where = coverage.basis ? " in the " + coverage.basis : "";
    const half = Math.round(100 * (res.data.min_coverage || 0)) + " %";
    setText("hotspot-line", (top ? "Hot spot: TPS " + top.tps.toFixed(2) + " % (" + (top.positive + top.negative) +
      " tumour cells, " + Math.round(100 * top.covered) + " % of the field" + where + ")"
      : "No field has " + res.data.min_cells + " tumour cells or more with " + half + " of it" + where + ".") +
      (coverage.note ? " " + coverage.note + "." : ""));
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
