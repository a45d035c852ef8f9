/* Drawing one field of a project on a slide (annotations/templates/annotations/draw_field.html).
 *
 * OpenSeadragon on the pseudonymous DZI with the shared canvas overlay (field_overlay.js): the
 * project's fields on this slide as dashed outlines, the new rectangle solid.  In draw mode a drag
 * draws the rectangle (instead of panning) and two clicks set two opposite corners; the x, y,
 * width and height inputs follow the rectangle and can be typed in (the rectangle follows them).
 * The form posts to the server, which checks the region with services.check_region.
 * Geometry is platform coordinates (level-0 pixels, pixel i's centre at i, as in annotate.js; the
 * overlay converts to OpenSeadragon's): a field [x, y, w, h] holds pixels x..x+w-1 and is outlined
 * on their outer edges.  window.pdl1DrawField exposes the state for the browser tests.
 * ES module: the OpenSeadragon set-up and canvas overlay are the shared ones (static/common).
 */
import { fieldOverlay } from "../common/field_overlay.js";
import { createViewer, fitImageRect } from "../common/osd.js";

var cfg = JSON.parse(document.getElementById("draw-config").textContent);
var page = document.getElementById("draw-page");
var $ = function (id) { return document.getElementById(id); };
var W = cfg.size[0], H = cfg.size[1];
var inputs = { x: $("id_x"), y: $("id_y"), width: $("id_width"), height: $("id_height") };

var state = window.pdl1DrawField = {
  ready: false, tilesLoaded: 0, viewer: null, rect: null, corner: null, drawMode: true,
  fields: cfg.fields, outlined: 0,
};

var viewer, fo, ctx, pressedAt = null, dragged = false;

function clamp(v, lo, hi) { return Math.min(Math.max(v, lo), hi); }

// The pixel under a platform coordinate: pixel i spans [i - 0.5, i + 0.5).
function pixelAt(v, max) { return clamp(Math.floor(v + 0.5), 0, max - 1); }

// The field of every pixel the drag (or the two clicked corners) touched, both end pixels included:
// the corner pixels the user pointed at are inside the field, not cut off or one beyond it.
function rectFrom(a, b) {
  var x0 = pixelAt(Math.min(a.x, b.x), W), x1 = pixelAt(Math.max(a.x, b.x), W);
  var y0 = pixelAt(Math.min(a.y, b.y), H), y1 = pixelAt(Math.max(a.y, b.y), H);
  return [x0, y0, x1 - x0 + 1, y1 - y0 + 1];
}

function valid(r) { return !!r && r[2] >= 1 && r[3] >= 1; }

function showSize() {
  var r = state.rect, el = $("draw-size");
  $("create-field").disabled = !valid(r);
  if (!valid(r)) { el.textContent = "No rectangle yet: drag one on the slide."; return; }
  var text = r[2] + " × " + r[3] + " px";
  if (cfg.mpp) { text += " = " + (r[2] * cfg.mpp).toFixed(1) + " × " + (r[3] * cfg.mpp).toFixed(1) + " µm"; }
  el.textContent = text;
}

function setRect(r, fromInputs) {
  state.rect = r;
  if (!fromInputs) {
    ["x", "y", "width", "height"].forEach(function (k, i) { inputs[k].value = r ? r[i] : ""; });
  }
  showSize();
  fo.request();
}

function rectFromInputs() {
  var v = ["x", "y", "width", "height"].map(function (k) { return parseInt(inputs[k].value, 10); });
  return v.every(function (n) { return !isNaN(n); }) ? v : null;
}

function outline(r, colour, dashed) {
  var a = fo.regionPath(ctx, r);
  ctx.setLineDash(dashed ? [6, 4] : []);
  ctx.strokeStyle = colour;
  ctx.stroke();
  return a;
}

function draw() {  // called by fo.paint() with the transform updated and the canvas cleared
  ctx.lineWidth = 2;
  ctx.font = "12px system-ui, sans-serif";
  state.outlined = 0;
  cfg.fields.forEach(function (f) {
    var a = outline(f.region, "#00e5ff", true);
    ctx.fillStyle = "#00e5ff";
    ctx.fillText("field " + f.id, a.x + 3, a.y - 4);
    state.outlined += 1;
  });
  ctx.setLineDash([]);
  if (state.rect) {
    fo.regionPath(ctx, state.rect);
    ctx.fillStyle = "rgba(255, 152, 0, 0.15)";
    ctx.fill();
    ctx.lineWidth = 2.5;
    outline(state.rect, "#ff9800", false);
  }
  if (state.corner) {  // the first of two clicked corners
    var c = fo.toScreen(state.corner.x, state.corner.y);
    ctx.strokeStyle = "#ff9800"; ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(c.x - 8, c.y); ctx.lineTo(c.x + 8, c.y); ctx.moveTo(c.x, c.y - 8); ctx.lineTo(c.x, c.y + 8);
    ctx.stroke();
  }
}

function platformPoint(e) { fo.update(); return fo.toImage(e.position.x, e.position.y); }

function onPress(e) {
  pressedAt = state.drawMode ? platformPoint(e) : null;
  dragged = false;
}

function onDrag(e) {
  if (!state.drawMode || !pressedAt) { return; }
  e.preventDefaultAction = true;  // draw, not pan
  dragged = true;
  state.corner = null;
  setRect(rectFrom(pressedAt, platformPoint(e)));
}

function onClick(e) {
  if (!state.drawMode) { return; }
  e.preventDefaultAction = true;
  if (dragged || !e.quick) { dragged = false; pressedAt = null; return; }
  var p = platformPoint(e);
  if (!state.corner) {
    state.corner = p;
    $("draw-size").textContent = "Now click the opposite corner.";
    fo.request();
  } else {
    var first = state.corner;
    state.corner = null;
    setRect(rectFrom(first, p));
  }
}

function startViewer() {
  viewer = createViewer({
    imagesUrl: page.getAttribute("data-osd-images"), tileSources: cfg.dzi, state: state, onError: function (message) {
      var el = $("annotate-error");
      el.textContent = message;
      el.hidden = false;
    }, options: { maxZoomPixelRatio: 4 },
  });
  fo = fieldOverlay(viewer, draw);
  ctx = fo.ctx;
  viewer.addHandler("open", function () {
    fo.attach();
    var r = rectFromInputs();  // typed values kept after a refused submit
    if (r) {
      fitImageRect(viewer, r[0], r[1], r[2], r[3], 0.5);
    }
    setRect(r);
    state.ready = true;
  });
  viewer.addHandler("canvas-press", onPress);
  viewer.addHandler("canvas-drag", onDrag);
  viewer.addHandler("canvas-click", onClick);
  Object.keys(inputs).forEach(function (k) {
    inputs[k].addEventListener("input", function () { setRect(rectFromInputs(), true); });
  });
  $("draw-mode").addEventListener("change", function () {
    state.drawMode = this.checked;
    state.corner = null;
    fo.request();
  });
  $("clear-rect").addEventListener("click", function () { state.corner = null; setRect(null); });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && state.corner) { state.corner = null; showSize(); fo.request(); }
  });
  showSize();
}

state.toScreen = function (x, y) { return fo.pagePoint(x, y); };  // page coordinates (for tests)

startViewer();
