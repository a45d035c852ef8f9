/* One canvas over an OpenSeadragon viewer, in image (level-0) pixel coordinates (ES module): shared
 * by the annotation page (annotate.js), the review page (review.js) and the field-drawing page.
 *
 *   const fo = fieldOverlay(viewer, draw);      // draw(ctx) repaints everything
 *   fo.attach();                               // on "open": add the canvas, size it, draw
 *   fo.toScreen(x, y) / fo.toImage(px, py)     // image px <-> overlay CSS px
 *   fo.request()                               // repaint on the next animation frame
 */
export function fieldOverlay(viewer, draw) {
  var canvas = document.createElement("canvas");
  canvas.className = "annotate-overlay pdl1-overlay";
  var ctx = canvas.getContext("2d");
  var tx = { ox: 0, oy: 0, s: 1 };  // image px -> overlay CSS px: (ox + x*s, oy + y*s)
  var queued = false;

  function update() {
    var vp = viewer.viewport;
    var o = vp.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, 0));
    var a = vp.imageToViewerElementCoordinates(new OpenSeadragon.Point(1000, 0));
    tx.ox = o.x; tx.oy = o.y; tx.s = (a.x - o.x) / 1000;
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

  ["animation", "update-viewport", "resize", "full-page", "full-screen"].forEach(function (name) {
    viewer.addHandler(name, request);
  });
  viewer.addHandler("resize", function () { if (canvas.parentNode) { resize(); } });

  return {
    canvas: canvas, ctx: ctx, tx: tx, update: update, request: request, paint: paint, resize: resize,
    attach: function () { viewer.canvas.appendChild(canvas); resize(); },
    toScreen: function (x, y) { return { x: tx.ox + x * tx.s, y: tx.oy + y * tx.s }; },
    toImage: function (px, py) { return { x: (px - tx.ox) / tx.s, y: (py - tx.oy) / tx.s }; },
    pagePoint: function (x, y) {  // page coordinates of an image point (for tests)
      update();
      var r = viewer.canvas.getBoundingClientRect();
      return { x: r.left + tx.ox + x * tx.s, y: r.top + tx.oy + y * tx.s };
    },
  };
}
