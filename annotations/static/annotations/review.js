/* Review of one field (annotations/templates/annotations/review.html).
 *
 * OpenSeadragon on the pseudonymous DZI, zoomed to the field; every annotator's points on ONE
 * canvas overlay (platform coordinates: pixel i's centre at i), each annotator with their own
 * marker shape (fill = the label's colour, black outline), plus the consensus layer as rings.  Checkboxes show and hide layers.  Read-only: the
 * accept/return forms are plain HTML forms beside the viewer.
 * window.pdl1Review exposes the drawn state for the browser tests.
 * ES module: the OpenSeadragon set-up and canvas overlay are the shared ones (static/common).
 */
import { fieldOverlay } from "../common/field_overlay.js";
import { createViewer, fitImageRect } from "../common/osd.js";

var cfg = JSON.parse(document.getElementById("review-config").textContent);
var page = document.getElementById("review-page");
var fx = cfg.field[0], fy = cfg.field[1], fw = cfg.field[2], fh = cfg.field[3];
var R = 6;  // marker half-size, screen px
var colours = {};
cfg.labels.forEach(function (l) { colours[l.name] = l.colour || "#888888"; });

var state = window.pdl1Review = {
  ready: false, tilesLoaded: 0, viewer: null,
  layers: cfg.layers.map(function (l) {
    return { annotator: l.annotator, session: l.session, shape: l.shape, visible: l.visible, points: l.points, drawn: 0 };
  }),
  consensus: { visible: false, points: cfg.consensus, drawn: 0 },
};

// Marker paths in a unit box centred on (0, 0), scaled by R.
function path(c, shape, x, y) {
  var k, a;
  c.beginPath();
  switch (shape) {
    case "square": c.rect(x - R * 0.8, y - R * 0.8, R * 1.6, R * 1.6); break;
    case "triangle": c.moveTo(x, y - R); c.lineTo(x + R * 0.95, y + R * 0.75); c.lineTo(x - R * 0.95, y + R * 0.75); c.closePath(); break;
    case "diamond": c.moveTo(x, y - R); c.lineTo(x + R, y); c.lineTo(x, y + R); c.lineTo(x - R, y); c.closePath(); break;
    case "cross": case "plus":
      var w = R * 0.35, rot = shape === "cross" ? Math.PI / 4 : 0;
      for (k = 0; k < 4; k++) {
        a = rot + k * Math.PI / 2;
        var ca = Math.cos(a), sa = Math.sin(a);
        var pts = [[w, -w], [R, -w], [R, w], [w, w]];
        for (var j = 0; j < pts.length; j++) {
          var px = x + pts[j][0] * ca - pts[j][1] * sa, py = y + pts[j][0] * sa + pts[j][1] * ca;
          if (k === 0 && j === 0) { c.moveTo(px, py); } else { c.lineTo(px, py); }
        }
      }
      c.closePath(); break;
    case "star":
      for (k = 0; k < 10; k++) {
        a = -Math.PI / 2 + k * Math.PI / 5;
        var r = k % 2 ? R * 0.45 : R;
        if (k === 0) { c.moveTo(x + r * Math.cos(a), y + r * Math.sin(a)); } else { c.lineTo(x + r * Math.cos(a), y + r * Math.sin(a)); }
      }
      c.closePath(); break;
    case "hexagon":
      for (k = 0; k < 6; k++) {
        a = k * Math.PI / 3;
        if (k === 0) { c.moveTo(x + R * Math.cos(a), y + R * Math.sin(a)); } else { c.lineTo(x + R * Math.cos(a), y + R * Math.sin(a)); }
      }
      c.closePath(); break;
    case "ring": c.arc(x, y, R * 1.6, 0, 2 * Math.PI); break;
    default: c.arc(x, y, R * 0.8, 0, 2 * Math.PI);
  }
}

// The legend's SVG markers: the same shapes, drawn once into each <svg data-shape>.
function legend() {
  document.querySelectorAll("svg[data-shape]").forEach(function (svg) {
    var shape = svg.getAttribute("data-shape");
    var canvas = document.createElement("canvas");
    canvas.width = canvas.height = 16;
    var c = canvas.getContext("2d");
    c.translate(8, 8);
    path(c, shape, 0, 0);
    if (shape === "ring") { c.lineWidth = 2; c.strokeStyle = "#333"; c.stroke(); }
    else { c.fillStyle = "#bbbbbb"; c.fill(); c.strokeStyle = "#000"; c.stroke(); }
    var img = document.createElementNS("http://www.w3.org/2000/svg", "image");
    img.setAttribute("href", canvas.toDataURL());
    img.setAttribute("x", "-7"); img.setAttribute("y", "-7"); img.setAttribute("width", "14"); img.setAttribute("height", "14");
    svg.appendChild(img);
  });
}

var viewer, fo, ctx;  // fo: the shared canvas overlay (field_overlay.js)

function toScreen(x, y) { return fo.toScreen(x, y); }

function draw() {  // called by fo.paint() with the transform updated and the canvas cleared
  ctx.lineWidth = 2; ctx.setLineDash([6, 4]); ctx.strokeStyle = "#00e5ff";
  fo.regionPath(ctx, cfg.field);
  ctx.stroke();
  ctx.setLineDash([]);
  var c = state.consensus;
  c.drawn = 0;
  if (c.visible) {
    ctx.lineWidth = 2.5;
    c.points.forEach(function (p) {
      var s = toScreen(p[0], p[1]);
      path(ctx, "ring", s.x, s.y);
      ctx.strokeStyle = colours[p[2]] || "#888888";
      ctx.stroke();
      c.drawn += 1;
    });
  }
  ctx.lineWidth = 1;
  state.layers.forEach(function (layer) {
    layer.drawn = 0;
    if (!layer.visible) { return; }
    layer.points.forEach(function (p) {
      var s = toScreen(p[0], p[1]);
      path(ctx, layer.shape, s.x, s.y);
      ctx.fillStyle = colours[p[2]] || "#888888";
      ctx.fill();
      ctx.strokeStyle = "#000000";
      ctx.stroke();
      layer.drawn += 1;
    });
  });
}

function error(text) {
  var el = document.getElementById("annotate-error");
  el.textContent = text; el.hidden = false;
}

function start() {
  legend();
  viewer = createViewer({
    imagesUrl: page.getAttribute("data-osd-images"), tileSources: cfg.dzi, state: state, onError: error,
    options: { maxZoomPixelRatio: 4, minZoomImageRatio: 0.5 },
  });
  fo = fieldOverlay(viewer, draw);
  ctx = fo.ctx;
  viewer.addHandler("open", function () {
    fitImageRect(viewer, fx, fy, fw, fh, 0.08);
    fo.attach();
    state.ready = true;
  });
  document.querySelectorAll(".layer-toggle").forEach(function (box) {
    var key = box.getAttribute("data-layer");
    var target = key === "consensus" ? state.consensus : state.layers[+key];
    target.visible = box.checked;
    box.addEventListener("change", function () { target.visible = box.checked; fo.request(); });
  });
}

state.toScreen = function (x, y) { return fo.pagePoint(x, y); };  // page coordinates (for tests)
state.overlayPixel = function (x, y) {  // RGBA of the overlay canvas at an image point (for tests)
  fo.paint();
  var s = toScreen(x, y), dpr = window.devicePixelRatio || 1;
  return Array.prototype.slice.call(ctx.getImageData(Math.round(s.x * dpr), Math.round(s.y * dpr), 1, 1).data);
};

start();
