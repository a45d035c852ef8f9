/* The overlay canvas: detections (points or a density heatmap), live points of a running job,
 * the selection, regions, hot spots and the ruler, drawn on animation frames through one
 * image->screen affine transform (rotation included).
 *
 * When the view would hold too many points, or the zoom is low, a density heatmap (one small
 * offscreen image per layer setting) replaces them. */

import { affine, boxArea, imageZoom, viewBox } from "./geometry.js";
import { drawHotspots, drawRegions } from "./regions.js";
import { drawRuler } from "./ruler.js";
import { updateScalebar } from "./scalebar.js";
import { COLORS, LABEL_NAME, NEGATIVE, POSITIVE, S, cfg, debug, formatNumber, setText } from "./state.js";

export const HEATMAP_ABOVE = 12000; // points in view above which the heatmap replaces them
export const LOW_ZOOM = 1 / 24; // screen px per level-0 px below which the heatmap replaces points

let drawPending = false;
let lastModeText = null;

export function activeJob() { return S.pts.job || cfg.job; }

// ---- what to show: points or heatmap ------------------------------------------------------
function densityEstimate(box) {
  // Points in the box from the density grid, each cell weighted by its overlap with the box.
  const density = S.density;
  if (!density) { return null; }
  const g = density.grid_px;
  const c0 = Math.max(0, Math.floor(box.x0 / g)), c1 = Math.min(density.cols - 1, Math.floor((box.x1 - 1) / g));
  const r0 = Math.max(0, Math.floor(box.y0 / g)), r1 = Math.min(density.rows - 1, Math.floor((box.y1 - 1) / g));
  let sum = 0;
  for (let r = r0; r <= r1; r++) {
    const pr = density.positive[r] || [], nr = density.negative[r] || [];
    const fy = (Math.min(box.y1, (r + 1) * g) - Math.max(box.y0, r * g)) / g;
    for (let c = c0; c <= c1; c++) {
      const fx = (Math.min(box.x1, (c + 1) * g) - Math.max(box.x0, c * g)) / g;
      const v = (S.layers.positive ? pr[c] || 0 : 0) + (S.layers.negative ? nr[c] || 0 : 0);
      sum += v * Math.max(0, fx) * Math.max(0, fy);
    }
  }
  return sum;
}

function pointsInView() {
  // Best estimate of the points in the current view: from the density grid, else scaled
  // from the last viewport query's total.
  const view = viewBox(0);
  const est = densityEstimate(view);
  if (est !== null) { return est; }
  const pts = S.pts;
  if (pts.box && pts.total > pts.n && boxArea(pts.box) > 0) {
    return pts.total * boxArea(view) / boxArea(pts.box);
  }
  return pts.n;
}

export function wantHeatmap() {
  if (!S.layers.heatmap || !activeJob()) { return false; }
  return imageZoom() < LOW_ZOOM || pointsInView() > HEATMAP_ABOVE;
}

// ---- drawing -------------------------------------------------------------------------------
export function requestDraw() {
  if (drawPending) { return; }
  drawPending = true;
  window.requestAnimationFrame(draw);
}

function draw() {
  drawPending = false;
  if (!S.ctx || !S.viewer) { return; }
  const began = performance.now();
  drawOverlay();
  const ms = performance.now() - began;
  const stats = debug.drawStats;
  stats.count += 1;
  stats.totalMs += ms;
  if (ms > stats.maxMs) { stats.maxMs = ms; }
}

function drawOverlay() {
  debug.frames += 1;
  const ctx = S.ctx, w = S.overlay.width, h = S.overlay.height;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const counts = { positive: 0, negative: 0, live: 0, heatmapCells: 0, regions: 0, hotspotFields: 0 };
  const t = affine();
  const heat = wantHeatmap() && S.density;
  if (heat) {
    counts.heatmapCells = drawHeatmap(t);
    debug.mode = "heatmap";
  } else if (cfg.job || S.pts.n) {
    drawPoints(t, counts);
    debug.mode = "points";
  } else {
    debug.mode = "none";
  }
  if (S.live.xs.length) { counts.live = drawLive(t); }
  counts.hotspotFields = drawHotspots(t);
  counts.regions = drawRegions(t);
  drawSelection(t);
  drawRuler(t);
  debug.drawnCounts = counts;
  updateScalebar();
  updateModeText(heat, counts);
}

// Markers: a ring round the nucleus (radius MARKER_UM) that scales with the zoom, so the nucleus
// itself stays visible; model detections are circles, corrected points diamonds. Zoomed out (a ring
// smaller than RING_MIN_PX) they become small filled marks, where a nucleus is a few pixels anyway.
const MARKER_UM = 7;
const RING_MIN_PX = 4;
const RING_MAX_PX = 48;

/** The marker radius in screen (CSS) px at the current zoom. */
export function pointRadius() {
  const mpp = (S.info && S.info.mpp_x) || 0.5;
  const r = (MARKER_UM / mpp) * imageZoom();
  return r < RING_MIN_PX ? Math.max(1.5, r * 0.75) : Math.min(RING_MAX_PX, r);
}

export function ringMarkers() { return pointRadius() >= RING_MIN_PX; }

function markerPath(ctx, x, y, r, corrected) {
  if (corrected) { // a diamond
    const q = r; // inscribed in the ring a model point would have
    ctx.moveTo(x, y - q);
    ctx.lineTo(x + q, y);
    ctx.lineTo(x, y + q);
    ctx.lineTo(x - q, y);
    ctx.closePath();
  } else {
    ctx.moveTo(x + r, y);
    ctx.arc(x, y, r, 0, 6.283185307179586);
  }
}

function drawPoints(t, counts) {
  const pts = S.pts, ctx = S.ctx, dpr = S.dpr;
  const n = pts.n;
  if (!n) { return; }
  const r = pointRadius() * dpr;
  const ring = ringMarkers();
  const shaped = ring || (r >= 3 && n <= 8000); // else squares: the cheapest mark for many points
  const W = S.overlay.width, H = S.overlay.height;
  const a = t.a * dpr, b = t.b * dpr, c = t.c * dpr, d = t.d * dpr, e = t.e * dpr, f = t.f * dpr;
  const xs = pts.xs, ys = pts.ys, labels = pts.labels, corrected = pts.corrected;
  const width = Math.max(1.5, Math.min(3.5, r / dpr * 0.15)) * dpr;
  let correctedDrawn = 0;
  [NEGATIVE, POSITIVE].forEach((label) => {
    if ((label === POSITIVE && !S.layers.positive) || (label === NEGATIVE && !S.layers.negative)) { return; }
    let drawn = 0;
    const rgb = COLORS[label];
    const colour = "rgba(" + rgb[0] + "," + rgb[1] + "," + rgb[2] + ",0.95)";
    [false, true].forEach((isCorrected) => {
      ctx.beginPath();
      let any = false;
      for (let i = 0; i < n; i++) {
        if (labels[i] !== label || !!corrected[i] !== isCorrected) { continue; }
        const x = a * xs[i] + c * ys[i] + e;
        const y = b * xs[i] + d * ys[i] + f;
        if (x < -r || y < -r || x > W + r || y > H + r) { continue; }
        if (shaped || isCorrected) {
          markerPath(ctx, x, y, r, isCorrected);
        } else {
          ctx.rect(x - r, y - r, 2 * r, 2 * r);
        }
        drawn++;
        any = true;
        if (isCorrected) { correctedDrawn++; }
      }
      if (!any) { return; }
      if (ring) { // outlined: a dark halo under the colour keeps it visible on pale and dark stain
        ctx.lineJoin = "round";
        ctx.lineWidth = width + 2 * dpr;
        ctx.strokeStyle = isCorrected ? "rgba(255,255,255,0.9)" : "rgba(0,0,0,0.55)";
        ctx.stroke();
        ctx.lineWidth = width;
        ctx.strokeStyle = colour;
        ctx.stroke();
      } else {
        ctx.fillStyle = colour;
        ctx.fill();
        if (shaped || isCorrected) {
          ctx.lineWidth = Math.max(1, dpr);
          ctx.strokeStyle = isCorrected ? "rgba(255,255,255,0.95)" : "rgba(0,0,0,0.55)";
          ctx.stroke();
        }
      }
    });
    counts[LABEL_NAME[label]] = drawn;
  });
  counts.corrected = correctedDrawn;
  counts.markerRadius = r / dpr;
  counts.markerStyle = ring ? "ring" : "filled";
}

function drawLive(t) {
  const ctx = S.ctx, dpr = S.dpr, live = S.live;
  const r = pointRadius() * dpr;
  const a = t.a * dpr, b = t.b * dpr, c = t.c * dpr, d = t.d * dpr, e = t.e * dpr, f = t.f * dpr;
  let drawn = 0;
  ctx.lineWidth = Math.max(1.5, 1.5 * dpr);
  [POSITIVE, NEGATIVE].forEach((label) => {
    if ((label === POSITIVE && !S.layers.positive) || (label === NEGATIVE && !S.layers.negative)) { return; }
    const rgb = COLORS[label];
    ctx.beginPath();
    for (let i = 0; i < live.xs.length; i++) {
      if (live.labels[i] !== label) { continue; }
      const x = a * live.xs[i] + c * live.ys[i] + e, y = b * live.xs[i] + d * live.ys[i] + f;
      ctx.rect(x - r, y - r, 2 * r, 2 * r);
      drawn++;
    }
    ctx.strokeStyle = "rgb(" + rgb.join(",") + ")";
    ctx.stroke();
  });
  return drawn;
}

function drawSelection(t) {
  const selected = S.selected, ctx = S.ctx, dpr = S.dpr;
  if (!selected) { return; }
  const x = (t.a * selected.x + t.c * selected.y + t.e) * dpr;
  const y = (t.b * selected.x + t.d * selected.y + t.f) * dpr;
  const r = pointRadius() * dpr + 5 * dpr;
  ctx.beginPath();
  ctx.arc(x, y, r, 0, 6.283185307179586);
  ctx.lineWidth = 2.5 * dpr;
  ctx.strokeStyle = "#00d0ff";
  ctx.stroke();
}

function heatmapImage() {
  const density = S.density, layers = S.layers;
  const key = (layers.positive ? "p" : "") + (layers.negative ? "n" : "");
  if (density.images[key] !== undefined) { return density.images[key]; }
  const cols = density.cols, rows = density.rows;
  const canvas = document.createElement("canvas");
  canvas.width = cols;
  canvas.height = rows;
  const g = canvas.getContext("2d");
  const img = g.createImageData(cols, rows);
  let max = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = (layers.positive ? density.positive[r][c] || 0 : 0) + (layers.negative ? density.negative[r][c] || 0 : 0);
      if (v > max) { max = v; }
    }
  }
  const pos = COLORS[POSITIVE], neg = COLORS[NEGATIVE];
  let cells = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const p = layers.positive ? density.positive[r][c] || 0 : 0;
      const q = layers.negative ? density.negative[r][c] || 0 : 0;
      const total = p + q;
      if (!total || !max) { continue; }
      cells++;
      const frac = p / total; // 1: all positive (red), 0: all negative (yellow)
      const o = (r * cols + c) * 4;
      img.data[o] = Math.round(neg[0] + (pos[0] - neg[0]) * frac);
      img.data[o + 1] = Math.round(neg[1] + (pos[1] - neg[1]) * frac);
      img.data[o + 2] = Math.round(neg[2] + (pos[2] - neg[2]) * frac);
      img.data[o + 3] = Math.round(255 * (0.2 + 0.6 * Math.sqrt(total / max)));
    }
  }
  g.putImageData(img, 0, 0);
  density.images[key] = { canvas, cells };
  return density.images[key];
}

function drawHeatmap(t) {
  if (!S.layers.positive && !S.layers.negative) { return 0; }
  const ctx = S.ctx, dpr = S.dpr;
  const image = heatmapImage();
  const g = S.density.grid_px;
  ctx.save();
  ctx.setTransform(t.a * dpr * g, t.b * dpr * g, t.c * dpr * g, t.d * dpr * g, t.e * dpr, t.f * dpr);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(image.canvas, 0, 0);
  ctx.restore();
  return image.cells;
}

function updateModeText(heat, counts) {
  const pts = S.pts;
  let text;
  if (!activeJob()) {
    text = S.live.xs.length ? counts.live + " new detections (job running)" : "No detections to show";
  } else if (heat) {
    text = "Density heatmap (" + (imageZoom() < LOW_ZOOM ? "zoomed out" : "too many points in view") + ")";
  } else if (!S.layers.positive && !S.layers.negative) {
    text = "Detection layers hidden";
  } else {
    text = formatNumber(counts.positive + counts.negative) + " points drawn";
    if (pts.total > pts.n) { text += " (thinned: " + formatNumber(pts.n) + " of " + formatNumber(pts.total) + " loaded)"; }
  }
  if (text !== lastModeText) {
    lastModeText = text;
    setText("layer-status", text);
    setText("overlay-mode", heat ? "heatmap" : debug.mode === "points" ? "points" : "");
  }
}
