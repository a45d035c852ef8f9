/* One canvas over an OpenSeadragon viewer, in platform coordinates (ES module): shared by the
 * annotation page (annotate.js), the review page (review.js) and the field-drawing page.
 *
 *   const fo = fieldOverlay(viewer, draw);      // draw(ctx) repaints everything
 *   fo.attach();                               // on "open": add the canvas, size it, draw
 *   fo.toScreen(x, y) / fo.toImage(px, py)     // platform px <-> overlay CSS px
 *   fo.regionPath(ctx, [x, y, w, h])           // the outline of a region's pixels, as a path
 *   fo.request()                               // repaint on the next animation frame
 *
 * Platform coordinates are level-0 pixels with pixel i's centre at i (osd.js, "Pixel convention"):
 * the pages place, store and test points in them, and only this module speaks OpenSeadragon's
 * image coordinates (platformToOsd / osdToPlatform), so no page converts twice or forgets to.
 */
import { osdToPlatform, platformToOsd } from "./osd.js";

export function fieldOverlay(viewer, draw) {
  var canvas = document.createElement("canvas");
  canvas.className = "annotate-overlay pdl1-overlay";
  var ctx = canvas.getContext("2d");
  // OpenSeadragon image px -> overlay CSS px: (ox + a*x + c*y, oy + b*x + d*y). A full affine map,
  // not a scale: under a rotated viewport a scale read off the x axis was 0 at 90° (every point
  // vanished, every click gave ±Infinity). s is the length of one image pixel on screen.
  var tx = { ox: 0, oy: 0, a: 1, b: 0, c: 0, d: 1, s: 1 };
  var queued = false;

  function update() {
    var vp = viewer.viewport, K = 1000;
    var o = vp.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, 0));
    var ex = vp.imageToViewerElementCoordinates(new OpenSeadragon.Point(K, 0));
    var ey = vp.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, K));
    tx.ox = o.x; tx.oy = o.y;
    tx.a = (ex.x - o.x) / K; tx.b = (ex.y - o.y) / K;
    tx.c = (ey.x - o.x) / K; tx.d = (ey.y - o.y) / K;
    tx.s = Math.sqrt(tx.a * tx.a + tx.b * tx.b);
  }

  function toScreen(x, y) {
    var p = platformToOsd(x, y);
    return { x: tx.ox + tx.a * p.x + tx.c * p.y, y: tx.oy + tx.b * p.x + tx.d * p.y };
  }

  function toImage(px, py) {
    var det = tx.a * tx.d - tx.b * tx.c, dx = px - tx.ox, dy = py - tx.oy;
    return osdToPlatform({ x: (tx.d * dx - tx.c * dy) / det, y: (tx.a * dy - tx.b * dx) / det });
  }

  // A region [x, y, w, h] holds pixels x..x+w-1, whose outer edges lie half a pixel beyond their
  // centres: the outline runs on the tile pixels' edges, not through the border pixels' middles.
  function regionPath(c, r) {
    var x0 = r[0] - 0.5, y0 = r[1] - 0.5, x1 = x0 + r[2], y1 = y0 + r[3];
    var corners = [toScreen(x0, y0), toScreen(x1, y0), toScreen(x1, y1), toScreen(x0, y1)];
    c.beginPath();
    c.moveTo(corners[0].x, corners[0].y);
    for (var i = 1; i < 4; i++) { c.lineTo(corners[i].x, corners[i].y); }
    c.closePath();
    return corners[0];
  }

  function request() {
    if (queued) { return; }
    queued = true;
    window.requestAnimationFrame(function () { queued = false; paint(); });
  }

  function paint() {
    if (!viewer.isOpen()) { return; }
    update();
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    draw(ctx);
  }

  function resize() {
    var el = viewer.canvas, dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(el.clientWidth * dpr);
    canvas.height = Math.round(el.clientHeight * dpr);
    canvas.style.width = el.clientWidth + "px";
    canvas.style.height = el.clientHeight + "px";
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    request();
  }

  ["animation", "update-viewport", "resize", "full-page", "full-screen", "rotate"].forEach(function (name) {
    viewer.addHandler(name, request);
  });
  viewer.addHandler("resize", function () { if (canvas.parentNode) { resize(); } });
  // OpenSeadragon mirrors the tiles about the canvas centre but not imageToViewerElementCoordinates:
  // mirrored, every marker sat over another nucleus. createViewer turns its "f" key off; a mirror from
  // anywhere else (a script, a future button) is undone here rather than drawn wrong.
  viewer.addHandler("flip", function () { if (viewer.viewport.getFlip()) { viewer.viewport.setFlip(false); } });

  return {
    canvas: canvas, ctx: ctx, tx: tx, update: update, request: request, paint: paint, resize: resize,
    toScreen: toScreen, toImage: toImage, regionPath: regionPath,
    attach: function () { viewer.canvas.appendChild(canvas); resize(); },
    pagePoint: function (x, y) {  // page coordinates of a platform point (for tests)
      update();
      var r = viewer.canvas.getBoundingClientRect(), s = toScreen(x, y);
      return { x: r.left + s.x, y: r.top + s.y };
    },
  };
}
