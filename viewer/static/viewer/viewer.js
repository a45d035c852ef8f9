/* PD-L1 slide viewer: OpenSeadragon + one canvas overlay for detections, heatmap, corrections
 * and live job progress.
 *
 * Overlays stay fluid with millions of detections: only the viewport's points are fetched
 * (debounced, at most one request in flight), kept in typed arrays, and drawn on a single
 * canvas on animation frames through one image->screen affine transform (rotation included).
 * When the view would hold too many points, or the zoom is low, a density heatmap (one small
 * offscreen image per layer setting) replaces them.
 *
 * window.pdl1Viewer exposes state for tests and benchmarks (drawnCounts, progressPath, ...).
 */
(function () {
  "use strict";

  var page = document.getElementById("pdl1-viewer-page");
  if (!page || typeof OpenSeadragon === "undefined") {
    return;
  }

  var POSITIVE = 1;
  var NEGATIVE = 2;
  var LABEL_NAME = { 1: "positive", 2: "negative" };
  var COLORS = { 1: [220, 30, 40], 2: [245, 200, 0] }; // red, yellow
  var MAX_POINTS = 20000; // per viewport request
  var HEATMAP_ABOVE = 12000; // points in view above which the heatmap replaces them
  var LOW_ZOOM = 1 / 24; // screen px per level-0 px below which the heatmap replaces points
  var QUERY_DEBOUNCE_MS = 150;
  var QUERY_MAX_WAIT_MS = 400; // keep loading during a long continuous pan
  var QUERY_MARGIN = 0.25; // fetch this much around the view on each side
  var POLL_MS = 1500;
  var WATCHDOG_MS = 3000;
  var WATCHDOG_GRACE_MS = 1500;
  var WS_CONNECT_TIMEOUT_MS = 4000;
  var FINAL = { done: true, failed: true, cancelled: true };
  var STATUS_RANK = { queued: 0, running: 1, merging: 2, done: 3, failed: 3, cancelled: 3 };

  var cfg = {
    slide: Number(page.dataset.slide),
    job: page.dataset.job ? Number(page.dataset.job) : null,
    runningJob: page.dataset.runningJob ? Number(page.dataset.runningJob) : null,
    assayClone: page.dataset.assayClone || null,
    osdImages: page.dataset.osdImages,
  };

  // Roots from base.html (reverse()d, so under the host's prefix when the module is mounted in one).
  var API = document.body.dataset.apiRoot;
  var WS = document.body.dataset.wsRoot;
  var api = {
    info: function () { return page.dataset.infoUrl; },
    points: function (job) { return API + "viewer/jobs/" + job + "/points/"; },
    point: function (job, id) { return API + "viewer/jobs/" + job + "/points/" + encodeURIComponent(id) + "/"; },
    density: function (job, gridPx) { return API + "viewer/jobs/" + job + "/density/?grid_px=" + gridPx; },
    state: function (job) { return API + "viewer/jobs/" + job + "/state/"; },
    corrections: function (job) { return API + "viewer/jobs/" + job + "/corrections/"; },
    regions: function (job) { return API + "viewer/jobs/" + job + "/regions/"; },
    region: function (job, id, version) {
      return API + "viewer/jobs/" + job + "/regions/" + id + "/?base_version=" + version;
    },
    hotspots: function (job) { return API + "viewer/jobs/" + job + "/hotspots/"; },
    startJob: API + "jobs/",
    ws: function (job) {
      return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + WS + "jobs/" + job + "/";
    },
  };

  // ---- debug / test surface -------------------------------------------------------------------
  var debug = (window.pdl1Viewer = {
    ready: false,
    viewer: null,
    info: null,
    tilesLoaded: 0,
    tileErrors: 0,
    frames: 0,
    mode: "none", // "points" | "heatmap" | "none"
    drawnCounts: { positive: 0, negative: 0, live: 0, heatmapCells: 0 },
    queries: 0,
    pointsLoaded: 0,
    pointsTotalInBox: 0,
    progressPath: null, // "live" | "polling"
    progressPathReason: "",
    progressEvents: 0,
    stateHistory: [], // [status, tiles_done, tiles_total, "ws" | "poll"]
    lastState: null,
    correctionsVersion: null,
    regions: [], // active drawn regions {id, kind, include, vertices}
    drawing: null, // the region being drawn: {kind, vertices}
    hotspots: null, // the last /hotspots/ reply
    selected: null,
    errors: [],
    drawStats: { count: 0, totalMs: 0, maxMs: 0 }, // time spent drawing the overlay
  });

  // ---- helpers -------------------------------------------------------------------------------
  function $(id) { return document.getElementById(id); }

  function setText(id, text) {
    var el = $(id);
    if (el) { el.textContent = text; }
  }

  function cookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) { return decodeURIComponent(parts[i].slice(eq + 1)); }
    }
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function fetchJSON(url, options) {
    options = options || {};
    var init = { credentials: "same-origin", headers: { Accept: "application/json" }, signal: options.signal };
    if (options.body !== undefined) {
      init.method = options.method || "POST";
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRFToken"] = cookie("csrftoken");
      init.body = JSON.stringify(options.body);
    }
    return fetch(url, init).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text.slice(0, 200) }; }
        return { ok: response.ok, status: response.status, data: data };
      });
    });
  }

  function reportError(message) {
    debug.errors.push(message);
    var el = $("viewer-error");
    el.textContent = message;
    el.hidden = false;
  }

  function clearError() { $("viewer-error").hidden = true; }

  function formatNumber(n) {
    return n === null || n === undefined ? "—" : Number(n).toLocaleString("en-GB");
  }

  function tpsCategory(value) {
    // Mirrors analysis.scoring.tps_category (22C3 NSCLC cut-offs) for a summary without a category key.
    if (value === null || value === undefined) { return null; }
    if (value < 1) { return "TPS < 1%"; }
    if (value < 50) { return "TPS 1-49%"; }
    return "TPS >= 50%";
  }

  function describeDetail(data, status) {
    if (data && typeof data.detail === "string") { return data.detail; }
    if (data && typeof data === "object") {
      var parts = [];
      Object.keys(data).forEach(function (k) { parts.push(k + ": " + [].concat(data[k]).join(" ")); });
      if (parts.length) { return parts.join("; "); }
    }
    return "request failed (HTTP " + status + ")";
  }

  // ---- points held for the current view -----------------------------------------------------
  var pts = emptyPoints();
  var live = { xs: [], ys: [], labels: [] }; // detections of a running job, from progress events

  function emptyPoints() {
    return { n: 0, xs: new Float32Array(0), ys: new Float32Array(0), labels: new Int8Array(0),
             scores: new Float32Array(0), ids: [], corrected: [], box: null, total: 0, job: null };
  }

  function pointsFromResponse(data, box, job) {
    var xy = data.xy || [];
    var n = xy.length;
    var p = { n: n, xs: new Float32Array(n), ys: new Float32Array(n), labels: new Int8Array(n),
              scores: new Float32Array(n), ids: data.ids || [], corrected: [], box: box,
              total: data.total === undefined ? n : data.total, job: job };
    var labels = data.labels || [];
    var scores = data.scores || [];
    for (var i = 0; i < n; i++) {
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
    var flags = new Array(n);
    if (!Array.isArray(corrected)) { return flags; }
    if (corrected.length === n && corrected.every(function (v) { return typeof v === "boolean" || v === null; })) {
      return corrected.slice();
    }
    var set = {};
    corrected.forEach(function (id) { set[String(id)] = true; });
    for (var i = 0; i < n; i++) { flags[i] = !!set[String(ids[i])]; }
    return flags;
  }

  function indexOfId(id) {
    var key = String(id);
    for (var i = 0; i < pts.n; i++) {
      if (String(pts.ids[i]) === key) { return i; }
    }
    return -1;
  }

  function appendPoint(x, y, label, score, id) {
    var n = pts.n + 1;
    function grow(Type, old, value) { var a = new Type(n); a.set(old); a[n - 1] = value; return a; }
    pts.xs = grow(Float32Array, pts.xs, x);
    pts.ys = grow(Float32Array, pts.ys, y);
    pts.labels = grow(Int8Array, pts.labels, label);
    pts.scores = grow(Float32Array, pts.scores, score);
    pts.ids = pts.ids.concat([id]);
    pts.corrected = pts.corrected.concat([true]);
    pts.n = n;
  }

  // ---- state ---------------------------------------------------------------------------------
  var layers = { positive: true, negative: true, heatmap: true, hotspots: false };
  var density = null; // {grid_px, rows, cols, positive, negative, max, images: {}}
  var densityJob = null;
  var densityLoading = false;
  var selected = null; // {index, id, x, y, label, score, corrected}
  var addMode = false;
  var regions = [];
  var drawing = null; // {kind, vertices: [[x, y], ...]} while drawing a region
  var hotspots = null;
  var hotspotsLoading = false;
  var REGION_COLORS = { tumour: "rgba(0, 170, 70, 0.95)", necrosis: "rgba(40, 40, 40, 0.95)",
                        artefact: "rgba(120, 60, 160, 0.95)", control: "rgba(0, 110, 200, 0.95)" };
  var corrections = { version: null, count: null };
  var viewer = null;
  var overlay = null;
  var ctx = null;
  var dpr = window.devicePixelRatio || 1;
  var drawPending = false;
  var info = null;

  // ---- OpenSeadragon -------------------------------------------------------------------------
  fetchJSON(api.info(cfg.slide)).then(function (res) {
    if (!res.ok) {
      reportError("The slide cannot be displayed: " + describeDetail(res.data, res.status));
      return;
    }
    info = debug.info = res.data;
    startViewer();
  }).catch(function (err) { reportError("The slide information could not be loaded: " + err); });

  function preferredDrawer() {
    // OpenSeadragon's WebGL drawer is the fastest on a GPU, but through a software WebGL
    // (SwiftShader, llvmpipe: workstations or VMs without GPU acceleration) the 2D canvas
    // drawer is much cheaper per frame.
    try {
      var gl = document.createElement("canvas").getContext("webgl");
      if (!gl) { return "canvas"; }
      var ext = gl.getExtension("WEBGL_debug_renderer_info");
      var renderer = ext ? String(gl.getParameter(ext.UNMASKED_RENDERER_WEBGL)) : "";
      var lose = gl.getExtension("WEBGL_lose_context");
      if (lose) { lose.loseContext(); }
      if (/swiftshader|llvmpipe|softpipe|software/i.test(renderer)) { return "canvas"; }
    } catch (e) {
      return "canvas";
    }
    return ["webgl", "canvas"];
  }

  function startViewer() {
    viewer = debug.viewer = OpenSeadragon({
      id: "osd",
      drawer: preferredDrawer(),
      prefixUrl: cfg.osdImages,
      tileSources: info.dzi_url,
      showNavigator: true,
      navigatorPosition: "BOTTOM_RIGHT",
      showRotationControl: true,
      showFullPageControl: true,
      maxZoomPixelRatio: info.max_zoom_ratio || 1.1,
      minZoomImageRatio: 0.8,
      visibilityRatio: 0.5,
      animationTime: 0.6,
      blendTime: 0.1,
      immediateRender: false,
      crossOriginPolicy: false,
      gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: true },
      gestureSettingsTouch: { clickToZoom: false },
    });

    debug.drawer = viewer.drawer && viewer.drawer.getType ? viewer.drawer.getType() : null;
    viewer.addHandler("tile-loaded", function () { debug.tilesLoaded += 1; });
    viewer.addHandler("tile-load-failed", function (e) {
      debug.tileErrors += 1;
      if (debug.tileErrors === 1) { reportError("Some tiles failed to load: " + (e.message || "unknown error")); }
    });
    viewer.addHandler("open-failed", function (e) {
      reportError("The slide could not be opened: " + (e.message || "unknown error"));
    });
    viewer.addHandler("open", function () {
      setupOverlay();
      debug.ready = true;
      requestDraw();
      scheduleQuery(true);
      updateScalebar();
    });
    ["animation", "update-viewport", "rotate", "flip", "resize", "full-page", "full-screen"].forEach(function (name) {
      viewer.addHandler(name, function () { requestDraw(); });
    });
    viewer.addHandler("resize", function () { resizeOverlay(); });
    viewer.addHandler("viewport-change", function () { scheduleQuery(false); });
    viewer.addHandler("animation-finish", function () { scheduleQuery(false); });
    viewer.addHandler("canvas-click", onCanvasClick);
    viewer.addHandler("canvas-double-click", function (e) {
      if (!drawing) { return; }
      e.preventDefaultAction = true; // no zoom: the double-click closes the region
      finishRegion();
    });

    viewer.addControl($("scalebar"), { anchor: OpenSeadragon.ControlAnchor.BOTTOM_LEFT });
    viewer.addControl(document.querySelector(".viewer-toolbar"), { anchor: OpenSeadragon.ControlAnchor.TOP_RIGHT });
    $("rotate-left").addEventListener("click", function () { rotate(-90); });
    $("rotate-right").addEventListener("click", function () { rotate(90); });
    $("fullscreen").addEventListener("click", function () { viewer.setFullScreen(!viewer.isFullPage()); });
  }

  function rotate(degrees) {
    if (!viewer) { return; }
    viewer.viewport.setRotation((viewer.viewport.getRotation() + degrees + 360) % 360);
  }

  function setupOverlay() {
    overlay = document.createElement("canvas");
    overlay.className = "pdl1-overlay";
    viewer.canvas.appendChild(overlay);
    ctx = overlay.getContext("2d");
    resizeOverlay();
    window.addEventListener("resize", resizeOverlay);
  }

  function resizeOverlay() {
    if (!overlay) { return; }
    dpr = window.devicePixelRatio || 1;
    var w = viewer.canvas.clientWidth;
    var h = viewer.canvas.clientHeight;
    if (overlay.width !== Math.round(w * dpr) || overlay.height !== Math.round(h * dpr)) {
      overlay.width = Math.round(w * dpr);
      overlay.height = Math.round(h * dpr);
    }
    requestDraw();
  }

  // image (level-0 px) -> viewer element px, as x' = a x + c y + e, y' = b x + d y + f
  function affine() {
    var vp = viewer.viewport;
    var s = 4096;
    var o = vp.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, 0));
    var ax = vp.imageToViewerElementCoordinates(new OpenSeadragon.Point(s, 0));
    var ay = vp.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, s));
    return { a: (ax.x - o.x) / s, b: (ax.y - o.y) / s, c: (ay.x - o.x) / s, d: (ay.y - o.y) / s, e: o.x, f: o.y };
  }

  function imageZoom() { // screen px per level-0 px
    return viewer.viewport.viewportToImageZoom(viewer.viewport.getZoom(true));
  }

  function viewBox(margin) {
    var vp = viewer.viewport;
    var rect = vp.viewportToImageRectangle(vp.getBounds(true).getBoundingBox());
    var mx = rect.width * margin;
    var my = rect.height * margin;
    return {
      x0: Math.max(0, Math.floor(rect.x - mx)),
      y0: Math.max(0, Math.floor(rect.y - my)),
      x1: Math.min(info.width, Math.ceil(rect.x + rect.width + mx)),
      y1: Math.min(info.height, Math.ceil(rect.y + rect.height + my)),
    };
  }

  function boxArea(b) { return Math.max(0, b.x1 - b.x0) * Math.max(0, b.y1 - b.y0); }

  function contains(outer, inner) {
    return outer && inner.x0 >= outer.x0 && inner.y0 >= outer.y0 && inner.x1 <= outer.x1 && inner.y1 <= outer.y1;
  }

  // ---- what to show: points or heatmap ------------------------------------------------------
  function densityEstimate(box) {
    // Points in the box from the density grid, each cell weighted by its overlap with the box.
    if (!density) { return null; }
    var g = density.grid_px;
    var c0 = Math.max(0, Math.floor(box.x0 / g)), c1 = Math.min(density.cols - 1, Math.floor((box.x1 - 1) / g));
    var r0 = Math.max(0, Math.floor(box.y0 / g)), r1 = Math.min(density.rows - 1, Math.floor((box.y1 - 1) / g));
    var sum = 0;
    for (var r = r0; r <= r1; r++) {
      var pr = density.positive[r] || [], nr = density.negative[r] || [];
      var fy = (Math.min(box.y1, (r + 1) * g) - Math.max(box.y0, r * g)) / g;
      for (var c = c0; c <= c1; c++) {
        var fx = (Math.min(box.x1, (c + 1) * g) - Math.max(box.x0, c * g)) / g;
        var v = (layers.positive ? pr[c] || 0 : 0) + (layers.negative ? nr[c] || 0 : 0);
        sum += v * Math.max(0, fx) * Math.max(0, fy);
      }
    }
    return sum;
  }

  function pointsInView() {
    // Best estimate of the points in the current view: from the density grid, else scaled
    // from the last viewport query's total.
    var view = viewBox(0);
    var est = densityEstimate(view);
    if (est !== null) { return est; }
    if (pts.box && pts.total > pts.n && boxArea(pts.box) > 0) {
      return pts.total * boxArea(view) / boxArea(pts.box);
    }
    return pts.n;
  }

  function wantHeatmap() {
    if (!layers.heatmap || !activeJob()) { return false; }
    return imageZoom() < LOW_ZOOM || pointsInView() > HEATMAP_ABOVE;
  }

  function activeJob() { return pts.job || cfg.job; }

  // ---- drawing -------------------------------------------------------------------------------
  function requestDraw() {
    if (drawPending) { return; }
    drawPending = true;
    window.requestAnimationFrame(draw);
  }

  function draw() {
    drawPending = false;
    if (!ctx || !viewer) { return; }
    var began = performance.now();
    drawOverlay();
    var ms = performance.now() - began;
    var stats = debug.drawStats;
    stats.count += 1;
    stats.totalMs += ms;
    if (ms > stats.maxMs) { stats.maxMs = ms; }
  }

  function drawOverlay() {
    debug.frames += 1;
    var w = overlay.width, h = overlay.height;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, w, h);
    var counts = { positive: 0, negative: 0, live: 0, heatmapCells: 0, regions: 0, hotspotFields: 0 };
    var t = affine();
    var heat = wantHeatmap() && density;
    if (heat) {
      counts.heatmapCells = drawHeatmap(t);
      debug.mode = "heatmap";
    } else if (cfg.job || pts.n) {
      drawPoints(t, counts);
      debug.mode = "points";
    } else {
      debug.mode = "none";
    }
    if (live.xs.length) { counts.live = drawLive(t); }
    counts.hotspotFields = drawHotspots(t);
    counts.regions = drawRegions(t);
    drawSelection(t);
    debug.drawnCounts = counts;
    updateScalebar();
    updateModeText(heat, counts);
  }

  function pointRadius() {
    var mpp = (info && info.mpp_x) || 0.5;
    var r = (4 / mpp) * imageZoom(); // a ~8 µm wide mark
    return Math.max(1.5, Math.min(7, r));
  }

  function drawPoints(t, counts) {
    var n = pts.n;
    if (!n) { return; }
    var r = pointRadius() * dpr;
    var round = r >= 3 && n <= 8000;
    var W = overlay.width, H = overlay.height;
    var a = t.a * dpr, b = t.b * dpr, c = t.c * dpr, d = t.d * dpr, e = t.e * dpr, f = t.f * dpr;
    var xs = pts.xs, ys = pts.ys, labels = pts.labels;
    [NEGATIVE, POSITIVE].forEach(function (label) {
      if ((label === POSITIVE && !layers.positive) || (label === NEGATIVE && !layers.negative)) { return; }
      var drawn = 0;
      var rgb = COLORS[label];
      ctx.beginPath();
      for (var i = 0; i < n; i++) {
        if (labels[i] !== label) { continue; }
        var x = a * xs[i] + c * ys[i] + e;
        var y = b * xs[i] + d * ys[i] + f;
        if (x < -r || y < -r || x > W + r || y > H + r) { continue; }
        if (round) {
          ctx.moveTo(x + r, y);
          ctx.arc(x, y, r, 0, 6.283185307179586);
        } else {
          ctx.rect(x - r, y - r, 2 * r, 2 * r);
        }
        drawn++;
      }
      ctx.fillStyle = "rgba(" + rgb[0] + "," + rgb[1] + "," + rgb[2] + ",0.9)";
      ctx.fill();
      if (round) {
        ctx.lineWidth = Math.max(1, dpr);
        ctx.strokeStyle = "rgba(0,0,0,0.55)";
        ctx.stroke();
      }
      counts[LABEL_NAME[label]] = drawn;
    });
  }

  function drawLive(t) {
    var r = pointRadius() * dpr;
    var a = t.a * dpr, b = t.b * dpr, c = t.c * dpr, d = t.d * dpr, e = t.e * dpr, f = t.f * dpr;
    var drawn = 0;
    ctx.lineWidth = Math.max(1.5, 1.5 * dpr);
    [POSITIVE, NEGATIVE].forEach(function (label) {
      if ((label === POSITIVE && !layers.positive) || (label === NEGATIVE && !layers.negative)) { return; }
      var rgb = COLORS[label];
      ctx.beginPath();
      for (var i = 0; i < live.xs.length; i++) {
        if (live.labels[i] !== label) { continue; }
        var x = a * live.xs[i] + c * live.ys[i] + e, y = b * live.xs[i] + d * live.ys[i] + f;
        ctx.rect(x - r, y - r, 2 * r, 2 * r);
        drawn++;
      }
      ctx.strokeStyle = "rgb(" + rgb.join(",") + ")";
      ctx.stroke();
    });
    return drawn;
  }

  function drawSelection(t) {
    if (!selected) { return; }
    var x = (t.a * selected.x + t.c * selected.y + t.e) * dpr;
    var y = (t.b * selected.x + t.d * selected.y + t.f) * dpr;
    var r = pointRadius() * dpr + 5 * dpr;
    ctx.beginPath();
    ctx.arc(x, y, r, 0, 6.283185307179586);
    ctx.lineWidth = 2.5 * dpr;
    ctx.strokeStyle = "#00d0ff";
    ctx.stroke();
  }

  function heatmapImage() {
    var key = (layers.positive ? "p" : "") + (layers.negative ? "n" : "");
    if (density.images[key] !== undefined) { return density.images[key]; }
    var cols = density.cols, rows = density.rows;
    var canvas = document.createElement("canvas");
    canvas.width = cols;
    canvas.height = rows;
    var g = canvas.getContext("2d");
    var img = g.createImageData(cols, rows);
    var max = 0;
    var r, c;
    for (r = 0; r < rows; r++) {
      for (c = 0; c < cols; c++) {
        var v = (layers.positive ? density.positive[r][c] || 0 : 0) + (layers.negative ? density.negative[r][c] || 0 : 0);
        if (v > max) { max = v; }
      }
    }
    var cells = 0;
    for (r = 0; r < rows; r++) {
      for (c = 0; c < cols; c++) {
        var p = layers.positive ? density.positive[r][c] || 0 : 0;
        var q = layers.negative ? density.negative[r][c] || 0 : 0;
        var total = p + q;
        if (!total || !max) { continue; }
        cells++;
        var frac = p / total; // 1: all positive (red), 0: all negative (yellow)
        var o = (r * cols + c) * 4;
        img.data[o] = Math.round(COLORS[2][0] + (COLORS[1][0] - COLORS[2][0]) * frac);
        img.data[o + 1] = Math.round(COLORS[2][1] + (COLORS[1][1] - COLORS[2][1]) * frac);
        img.data[o + 2] = Math.round(COLORS[2][2] + (COLORS[1][2] - COLORS[2][2]) * frac);
        img.data[o + 3] = Math.round(255 * (0.2 + 0.6 * Math.sqrt(total / max)));
      }
    }
    g.putImageData(img, 0, 0);
    density.images[key] = { canvas: canvas, cells: cells };
    return density.images[key];
  }

  function drawHeatmap(t) {
    if (!layers.positive && !layers.negative) { return 0; }
    var image = heatmapImage();
    var g = density.grid_px;
    ctx.save();
    ctx.setTransform(t.a * dpr * g, t.b * dpr * g, t.c * dpr * g, t.d * dpr * g, t.e * dpr, t.f * dpr);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(image.canvas, 0, 0);
    ctx.restore();
    return image.cells;
  }

  function updateModeText(heat, counts) {
    var text;
    if (!activeJob()) {
      text = live.xs.length ? counts.live + " new detections (job running)" : "No detections to show";
    } else if (heat) {
      text = "Density heatmap (" + (imageZoom() < LOW_ZOOM ? "zoomed out" : "too many points in view") + ")";
    } else if (!layers.positive && !layers.negative) {
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
  var lastModeText = null;

  // ---- scale bar -----------------------------------------------------------------------------
  var NICE = [1, 2, 5];
  var lastScale = null;

  function updateScalebar() {
    if (!viewer || !info) { return; }
    var mpp = info.mpp_x;
    var bar = $("scalebar");
    var z = imageZoom();
    var key = mpp + ":" + z.toFixed(6);
    if (key === lastScale) { return; }
    lastScale = key;
    if (info.objective_power) {
      setText("magnification", (info.objective_power * z).toFixed(z * info.objective_power < 10 ? 1 : 0) + "×");
    }
    if (!mpp) {
      bar.querySelector(".scalebar-label").textContent = "no scale (mpp unknown)";
      bar.querySelector(".scalebar-bar").style.width = "0px";
      return;
    }
    var umPerPx = mpp / z;
    var target = 120 * umPerPx; // µm covered by ~120 screen px
    var exp = Math.floor(Math.log10(target));
    var best = Math.pow(10, exp);
    for (var k = 0; k < 3; k++) {
      for (var i = 0; i < NICE.length; i++) {
        var candidate = NICE[i] * Math.pow(10, exp + k - 1);
        if (candidate <= target) { best = candidate; }
      }
    }
    var px = best / umPerPx;
    bar.querySelector(".scalebar-bar").style.width = px.toFixed(1) + "px";
    bar.querySelector(".scalebar-label").textContent = best >= 1000 ? (best / 1000) + " mm" : best + " µm";
  }

  // ---- viewport queries ----------------------------------------------------------------------
  var queryTimer = null;
  var queryFirstAsked = 0;
  var queryInFlight = false;
  var queryAgain = false;

  function scheduleQuery(force) {
    if (!viewer || !info) { return; }
    if (force) { pts.box = pts.n ? pts.box : null; forceNext = true; }
    var now = performance.now();
    if (!queryTimer) { queryFirstAsked = now; }
    clearTimeout(queryTimer);
    var wait = Math.min(QUERY_DEBOUNCE_MS, Math.max(0, QUERY_MAX_WAIT_MS - (now - queryFirstAsked)));
    queryTimer = setTimeout(function () { queryTimer = null; runQuery(); }, force ? 0 : wait);
  }
  var forceNext = false;

  function runQuery() {
    var job = cfg.job;
    if (!job) { return; }
    if (!density && densityJob !== job) { loadDensity(job); }
    if (queryInFlight) { queryAgain = true; return; }
    var view = viewBox(0);
    var force = forceNext;
    forceNext = false;
    requestDraw();
    if (layers.heatmap && density && wantHeatmap()) { return; } // heatmap shown: no point query
    if (!layers.positive && !layers.negative) { return; } // nothing to draw
    if (!force && pts.job === job && contains(pts.box, view) &&
        (pts.total <= pts.n || boxArea(view) > 0.3 * boxArea(pts.box))) {
      return; // what is loaded covers the view at the detail the server can give
    }
    var box = viewBox(QUERY_MARGIN);
    if (boxArea(box) <= 0) { return; }
    var url = api.points(job) + "?x0=" + box.x0 + "&y0=" + box.y0 + "&x1=" + box.x1 + "&y1=" + box.y1 +
      "&max=" + MAX_POINTS + "&layers=positive,negative";
    queryInFlight = true;
    debug.queries += 1;
    fetchJSON(url).then(function (res) {
      if (!res.ok) {
        reportError("Detections could not be loaded: " + describeDetail(res.data, res.status));
        return;
      }
      if (job !== cfg.job) { return; }
      pts = pointsFromResponse(res.data, box, job);
      debug.pointsLoaded = pts.n;
      debug.pointsTotalInBox = pts.total;
      if (selected) { selected.index = indexOfId(selected.id); }
      requestDraw();
    }).catch(function (err) {
      reportError("Detections could not be loaded: " + err);
    }).then(function () {
      queryInFlight = false;
      if (queryAgain) { queryAgain = false; runQuery(); }
    });
  }

  function densityGridPx() {
    // About 256 cells along the long side (a 100,000 px slide: 391 px cells), 32 px at least.
    var side = Math.max(info.width, info.height);
    return Math.max(32, Math.min(4096, Math.ceil(side / 256)));
  }

  function loadDensity(job) {
    if (densityLoading) { return; }
    densityLoading = true;
    densityJob = job;
    fetchJSON(api.density(job, densityGridPx())).then(function (res) {
      if (!res.ok) {
        reportError("The density heatmap could not be loaded: " + describeDetail(res.data, res.status));
        return;
      }
      if (job !== cfg.job) { return; }
      var d = res.data;
      density = { grid_px: d.grid_px, rows: d.shape[0], cols: d.shape[1], positive: d.positive || [],
                  negative: d.negative || [], max: d.max, images: {} };
      scheduleQuery(true);
    }).catch(function (err) {
      reportError("The density heatmap could not be loaded: " + err);
    }).then(function () { densityLoading = false; requestDraw(); });
  }

  function resetDetections(job) {
    cfg.job = job;
    pts = emptyPoints();
    density = null;
    densityJob = null;
    selected = null;
    showSelection();
    live = { xs: [], ys: [], labels: [] };
    scheduleQuery(true);
    loadCorrections();
    hotspots = null;
    loadRegions();
  }

  // ---- layers --------------------------------------------------------------------------------
  function setLayer(name, on) {
    layers[name] = on;
    $("layer-" + name).checked = on;
    if (density) { density.images = {}; }
    scheduleQuery(true);
    requestDraw();
  }

  ["positive", "negative", "heatmap"].forEach(function (name) {
    $("layer-" + name).addEventListener("change", function (e) { setLayer(name, e.target.checked); });
  });

  // ---- scores --------------------------------------------------------------------------------
  function showScores(scores) {
    if (!scores) { return; }
    var counts = scores.counts || {};
    setText("count-positive", formatNumber(counts.positive));
    setText("count-negative", formatNumber(counts.negative));
    var tps = scores.tps;
    setText("tps", tps === null || tps === undefined ? "—" : Number(tps).toFixed(1) + " %");
    // The server's category follows the case's clone; null (a clone without built-in cut-offs) stays "—".
    setText("tps-category", ("tps_category" in scores ? scores.tps_category : tpsCategory(tps)) || "—");
    // The 95 % interval (sampling + the detector's measured error) and the near-cut-off flag:
    // the server computes both (viewer.services.job_scores); a summary without them shows "—".
    var interval = scores.tps_interval;
    var intervalEl = $("tps-interval");
    if (intervalEl) {
      intervalEl.textContent = interval ? interval.low.toFixed(1) + "–" + interval.high.toFixed(1) + " %" : "—";
      intervalEl.title = scores.detector_error || "";
    }
    var near = $("near-cutoff");
    if (near) {
      near.hidden = !scores.near_cutoff;
      near.textContent = scores.near_cutoff ? scores.uncertainty : "";
    }
  }

  var summaryEl = $("viewer-job-summary");
  if (summaryEl) {
    try { showScores(JSON.parse(summaryEl.textContent)); } catch (e) { /* no summary yet */ }
  }

  // ---- corrections ---------------------------------------------------------------------------
  function loadCorrections() {
    var job = cfg.job;
    if (!job) { return Promise.resolve(); }
    return fetchJSON(api.corrections(job)).then(function (res) {
      if (!res.ok) {
        setText("corrections-line", "Corrections unavailable: " + describeDetail(res.data, res.status));
        return;
      }
      corrections.version = debug.correctionsVersion = res.data.version;
      corrections.count = (res.data.items || []).length;
      showScores(res.data.scores);
      showCorrectionsLine();
    }).catch(function (err) { setText("corrections-line", "Corrections unavailable: " + err); });
  }

  function showCorrectionsLine() {
    setText("corrections-line", (corrections.count === null ? "" : corrections.count + " correction(s), ") +
      "version " + corrections.version + (addMode ? " · add mode: click to place a point" : ""));
  }

  function sendCorrection(body) {
    var job = cfg.job;
    if (!job) { return Promise.resolve(); }
    body.base_version = corrections.version;
    hideConflict();
    return fetchJSON(api.corrections(job), { body: body }).then(function (res) {
      if (res.status === 201) {
        corrections.version = debug.correctionsVersion = res.data.version;
        corrections.count = (corrections.count || 0) + 1;
        showScores(res.data.scores);
        showCorrectionsLine();
        hotspots = null; // the fields' TPS changed
        if (layers.hotspots) { loadHotspots(); }
        applyLocally(body, res.data.item || {});
        if (density) { density = null; densityJob = null; } // counts changed: refetch when needed
        scheduleQuery(true);
        return true;
      }
      if (res.status === 409) {
        if (res.data && res.data.version !== undefined) { corrections.version = res.data.version; }
        showConflict((res.data && res.data.detail) || "Someone else changed these detections.");
        return false;
      }
      showConflict("The correction was not saved: " + describeDetail(res.data, res.status));
      return false;
    }).catch(function (err) { showConflict("The correction was not saved: " + err); });
  }

  function applyLocally(body, item) {
    if (body.op === "add") {
      var id = item.point_id || (item.id !== undefined ? "c" + item.id : "new-" + Date.now());
      appendPoint(body.x, body.y, body.label, NaN, id);
      select(pts.n - 1);
    } else {
      var i = indexOfId(body.detection);
      if (i >= 0) {
        if (body.op === "delete") {
          pts.labels[i] = 0; // not drawn; gone from the next query
          selected = null;
          showSelection();
        } else {
          pts.labels[i] = body.label;
          pts.corrected[i] = true;
          select(i);
        }
      }
    }
    requestDraw();
  }

  function showConflict(message) {
    $("conflict").hidden = false;
    setText("conflict-message", message);
  }

  function hideConflict() { $("conflict").hidden = true; }

  $("conflict-reload").addEventListener("click", function () {
    hideConflict();
    loadCorrections();
    loadRegions();
    scheduleQuery(true);
  });

  function reclassify(label) {
    if (!selected || selected.id === undefined || selected.id === null) { return; }
    if (selected.label === label) { return; }
    sendCorrection({ op: "reclassify", detection: selected.id, label: label });
  }

  function deleteSelected() {
    if (!selected || selected.id === undefined || selected.id === null) { return; }
    sendCorrection({ op: "delete", detection: selected.id });
  }

  function setAddMode(on) {
    addMode = on;
    $("add-mode").setAttribute("aria-pressed", on ? "true" : "false");
    $("add-mode").classList.toggle("active", on);
    page.classList.toggle("adding", on);
    showCorrectionsLine();
  }

  $("reclass-positive").addEventListener("click", function () { reclassify(POSITIVE); });
  $("reclass-negative").addEventListener("click", function () { reclassify(NEGATIVE); });
  $("delete-detection").addEventListener("click", deleteSelected);
  $("add-mode").addEventListener("click", function () { setAddMode(!addMode); });

  // ---- regions: include / exclude polygons, TPS hot spots --------------------------------------
  function loadRegions() {
    var job = cfg.job;
    if (!job) { return Promise.resolve(); }
    return fetchJSON(api.regions(job)).then(function (res) {
      if (!res.ok) { setText("region-line", "Regions unavailable: " + describeDetail(res.data, res.status)); return; }
      regions = debug.regions = res.data.items || [];
      showRegionList();
      requestDraw();
    }).catch(function (err) { setText("region-line", "Regions unavailable: " + err); });
  }

  function showRegionList() {
    var list = $("region-list");
    list.innerHTML = "";
    regions.forEach(function (r) {
      var li = document.createElement("li");
      li.dataset.region = r.id;
      var sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = REGION_COLORS[r.kind] || "#888";
      li.appendChild(sw);
      li.appendChild(document.createTextNode(" " + r.kind + (r.include ? " (include)" : " (exclude)") +
        " · " + r.vertices.length + " vertices · " + r.author + " "));
      var del = document.createElement("button");
      del.type = "button";
      del.className = "region-delete";
      del.textContent = "Delete";
      del.addEventListener("click", function () { deleteRegion(r.id); });
      li.appendChild(del);
      list.appendChild(li);
    });
  }

  function setDrawMode(on) {
    if (on && !cfg.job) { return; }
    drawing = debug.drawing = on ? { kind: $("region-kind").value, vertices: [] } : null;
    if (on) { setAddMode(false); }
    $("draw-region").setAttribute("aria-pressed", on ? "true" : "false");
    $("draw-region").classList.toggle("active", on);
    page.classList.toggle("drawing", on);
    setText("region-line", on ? "Click the vertices; double-click or Enter closes the region, Esc cancels."
      : "Scores count points inside tumour areas (the whole slide without any) and outside exclusions.");
    requestDraw();
  }

  function addVertex(p) {
    if (!drawing || !info) { return; }
    var x = Math.min(Math.max(p.x, 0), info.width), y = Math.min(Math.max(p.y, 0), info.height);
    var v = drawing.vertices;
    var last = v[v.length - 1];
    var near = 3 / Math.max(imageZoom(), 1e-9); // 3 screen px: the clicks of a double-click
    if (last && Math.abs(last[0] - x) <= near && Math.abs(last[1] - y) <= near) { return; }
    v.push([Math.round(x * 10) / 10, Math.round(y * 10) / 10]);
    requestDraw();
  }

  function finishRegion() {
    if (!drawing) { return; }
    var body = { kind: drawing.kind, vertices: drawing.vertices.slice(), base_version: corrections.version };
    if (body.vertices.length < 3) {
      setText("region-line", "A region needs at least 3 vertices; keep clicking, or Esc to cancel.");
      return;
    }
    setDrawMode(false);
    hideConflict();
    return fetchJSON(api.regions(cfg.job), { body: body }).then(function (res) {
      if (res.status === 201) { regionSaved(res.data); return true; }
      if (res.status === 409) {
        if (res.data && res.data.version !== undefined) { corrections.version = res.data.version; }
        showConflict((res.data && res.data.detail) || "Someone else changed this slide's regions.");
        return false;
      }
      showConflict("The region was not saved: " + describeDetail(res.data, res.status));
      return false;
    }).catch(function (err) { showConflict("The region was not saved: " + err); });
  }

  function deleteRegion(id) {
    hideConflict();
    return fetchJSON(api.region(cfg.job, id, corrections.version),
      { method: "DELETE", body: { base_version: corrections.version } }).then(function (res) {
      if (res.ok) { regionSaved(res.data); return true; }
      if (res.status === 409 && res.data && res.data.version !== undefined) { corrections.version = res.data.version; }
      showConflict("The region was not deleted: " + describeDetail(res.data, res.status));
      return false;
    }).catch(function (err) { showConflict("The region was not deleted: " + err); });
  }

  function regionSaved(data) {
    corrections.version = debug.correctionsVersion = data.version;
    showScores(data.scores);
    showCorrectionsLine();
    hotspots = null;
    if (layers.hotspots) { loadHotspots(); }
    loadRegions();
  }

  function tracePath(t, vertices, close) {
    ctx.beginPath();
    vertices.forEach(function (v, i) {
      var x = (t.a * v[0] + t.c * v[1] + t.e) * dpr, y = (t.b * v[0] + t.d * v[1] + t.f) * dpr;
      if (i === 0) { ctx.moveTo(x, y); } else { ctx.lineTo(x, y); }
    });
    if (close) { ctx.closePath(); }
  }

  function drawRegions(t) {
    ctx.save();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.lineWidth = 2 * dpr;
    regions.forEach(function (r) {
      var colour = REGION_COLORS[r.kind] || "rgba(128, 128, 128, 0.9)";
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
      drawing.vertices.forEach(function (v) {
        ctx.beginPath();
        ctx.arc((t.a * v[0] + t.c * v[1] + t.e) * dpr, (t.b * v[0] + t.d * v[1] + t.f) * dpr, 3 * dpr, 0, 2 * Math.PI);
        ctx.fill();
      });
    }
    ctx.restore();
    return regions.length;
  }

  function setHotspots(on) {
    layers.hotspots = on;
    $("layer-hotspots").checked = on;
    if (on && !hotspots) { loadHotspots(); }
    if (!on) { setText("hotspot-line", ""); }
    requestDraw();
  }

  function loadHotspots() {
    if (!cfg.job || hotspotsLoading) { return; }
    hotspotsLoading = true;
    fetchJSON(api.hotspots(cfg.job)).then(function (res) {
      if (!res.ok) { setText("hotspot-line", "Hot spots unavailable: " + describeDetail(res.data, res.status)); return; }
      hotspots = debug.hotspots = res.data;
      var top = res.data.top;
      setText("hotspot-line", top ? "Hot spot: TPS " + top.tps.toFixed(1) + " % (" + (top.positive + top.negative) +
        " tumour cells)" : "No field has " + res.data.min_cells + " tumour cells or more.");
    }).catch(function (err) { setText("hotspot-line", "Hot spots unavailable: " + err); })
      .then(function () { hotspotsLoading = false; requestDraw(); });
  }

  function drawHotspots(t) {
    if (!layers.hotspots || !hotspots) { return 0; }
    var g = hotspots.field_px, n = 0;
    ctx.save();
    ctx.setTransform(t.a * dpr, t.b * dpr, t.c * dpr, t.d * dpr, t.e * dpr, t.f * dpr);
    hotspots.tps.forEach(function (row, r) {
      row.forEach(function (v, c) {
        if (v === null) { return; }
        var f = v / 100; // blue (0 %) to red (100 %)
        ctx.fillStyle = "rgba(" + Math.round(255 * f) + ", 40, " + Math.round(255 * (1 - f)) + ", 0.35)";
        ctx.fillRect(c * g, r * g, g, g);
        n += 1;
      });
    });
    if (hotspots.top) {
      var top = hotspots.top;
      ctx.lineWidth = 3 / Math.max(imageZoom(), 1e-9);
      ctx.strokeStyle = "rgba(255, 0, 200, 0.95)";
      ctx.strokeRect(top.x0, top.y0, top.x1 - top.x0, top.y1 - top.y0);
    }
    ctx.restore();
    return n;
  }

  $("draw-region").addEventListener("click", function () { setDrawMode(!drawing); });
  $("region-kind").addEventListener("change", function (e) { if (drawing) { drawing.kind = e.target.value; requestDraw(); } });
  $("layer-hotspots").addEventListener("change", function (e) { setHotspots(e.target.checked); });

  // ---- selection -----------------------------------------------------------------------------
  function onCanvasClick(e) {
    if (!e.quick || !info) { return; }
    e.preventDefaultAction = true;
    var pos = e.position;
    if (drawing) {
      addVertex(viewer.viewport.viewerElementToImageCoordinates(pos));
      return;
    }
    if (addMode) {
      if (!cfg.job) { return; }
      var p = viewer.viewport.viewerElementToImageCoordinates(pos);
      if (p.x < 0 || p.y < 0 || p.x >= info.width || p.y >= info.height) { return; }
      sendCorrection({ op: "add", x: Math.round(p.x * 10) / 10, y: Math.round(p.y * 10) / 10,
                       label: Number($("add-label").value) });
      return;
    }
    var hit = hitTest(pos.x, pos.y);
    if (hit < 0) {
      selected = null;
      showSelection();
    } else {
      select(hit);
    }
    requestDraw();
  }

  function hitTest(sx, sy) {
    if (debug.mode !== "points") { return -1; }
    var t = affine();
    var best = -1;
    var limit = pointRadius() + 6;
    var bestD = limit * limit;
    for (var i = 0; i < pts.n; i++) {
      var label = pts.labels[i];
      if (!((label === POSITIVE && layers.positive) || (label === NEGATIVE && layers.negative))) { continue; }
      var x = t.a * pts.xs[i] + t.c * pts.ys[i] + t.e - sx;
      var y = t.b * pts.xs[i] + t.d * pts.ys[i] + t.f - sy;
      var dd = x * x + y * y;
      if (dd <= bestD) { bestD = dd; best = i; }
    }
    return best;
  }

  function select(i) {
    selected = { index: i, id: pts.ids[i], x: pts.xs[i], y: pts.ys[i], label: pts.labels[i],
                 score: pts.scores[i], corrected: !!pts.corrected[i] };
    showSelection();
    // The detail endpoint is the authority (corrections applied); refresh what is shown.
    if (cfg.job && selected.id !== undefined && selected.id !== null && !/^new-/.test(String(selected.id))) {
      var asked = selected;
      fetchJSON(api.point(cfg.job, asked.id)).then(function (res) {
        if (!res.ok || selected !== asked) { return; }
        asked.label = res.data.label;
        asked.score = res.data.score;
        asked.corrected = !!res.data.corrected;
        asked.x = res.data.x;
        asked.y = res.data.y;
        showSelection();
        requestDraw();
      }).catch(function () { /* the local values stay shown */ });
    }
  }

  function showSelection() {
    debug.selected = selected;
    var has = !!selected;
    $("selection").hidden = !has;
    $("selection-empty").hidden = has;
    $("reclass-positive").disabled = !has || selected.label === POSITIVE;
    $("reclass-negative").disabled = !has || selected.label === NEGATIVE;
    $("delete-detection").disabled = !has;
    if (!has) { return; }
    var cls = LABEL_NAME[selected.label] || "label " + selected.label;
    $("sel-class").innerHTML = "";
    var sw = document.createElement("span");
    sw.className = "swatch " + cls;
    $("sel-class").appendChild(sw);
    $("sel-class").appendChild(document.createTextNode(cls + (selected.corrected ? " (corrected)" : "")));
    setText("sel-score", selected.score === null || selected.score === undefined || isNaN(selected.score)
      ? "—" : Number(selected.score).toFixed(3));
    setText("sel-pos", Math.round(selected.x) + ", " + Math.round(selected.y) + " px");
    setText("sel-id", String(selected.id));
  }

  // ---- keyboard ------------------------------------------------------------------------------
  document.addEventListener("keydown", function (e) {
    var tag = (e.target && e.target.tagName) || "";
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    var typing = tag === "SELECT" || tag === "TEXTAREA" || (e.target && e.target.isContentEditable) ||
      (tag === "INPUT" && !/^(checkbox|radio|button|submit|reset)$/.test(e.target.type));
    if (typing && e.key !== "Escape") { return; }
    var inViewer = viewer && viewer.canvas.contains(document.activeElement);
    switch (e.key) {
      case "p": setLayer("positive", !layers.positive); break;
      case "n": setLayer("negative", !layers.negative); break;
      case "h": setLayer("heatmap", !layers.heatmap); break;
      case "r": if (!inViewer) { rotate(90); } break; // OSD rotates itself when it has the focus
      case "R": if (!inViewer) { rotate(-90); } break;
      case "1": reclassify(POSITIVE); break;
      case "2": reclassify(NEGATIVE); break;
      case "x": case "Delete": deleteSelected(); break;
      case "m": setAddMode(!addMode); break;
      case "g": setDrawMode(!drawing); break;
      case "t": setHotspots(!layers.hotspots); break;
      case "Enter": if (!drawing) { return; } finishRegion(); break;
      case "Escape":
        setDrawMode(false);
        setAddMode(false);
        selected = null;
        showSelection();
        requestDraw();
        break;
      default: return;
    }
    e.preventDefault();
  });

  // ---- job progress: websocket ("live") with polling fallback --------------------------------
  var progress = null;

  function stateKey(s) {
    return [s.status, s.tiles_done, s.tiles_total, s.batches_done, s.batches_total].join("/");
  }

  function stateRank(s) {
    return [STATUS_RANK[s.status] || 0, s.batches_done || 0, s.tiles_done || 0];
  }

  function newer(a, b) { // a at least as far as b
    if (!b) { return true; }
    var ra = stateRank(a), rb = stateRank(b);
    for (var i = 0; i < ra.length; i++) {
      if (ra[i] !== rb[i]) { return ra[i] > rb[i]; }
    }
    return true;
  }

  function setPath(path, reason) {
    if (!progress) { return; }
    progress.path = path;
    debug.progressPath = path;
    debug.progressPathReason = reason || "";
    var badge = $("progress-path");
    badge.textContent = path + (reason ? " · " + reason : "");
    badge.className = "path-badge " + path;
    badge.title = path === "live"
      ? "Progress is pushed over a websocket"
      : "Progress is read from the server every " + POLL_MS / 1000 + " s" + (reason ? " (" + reason + ")" : "");
  }

  function trackJob(jobId) {
    stopTracking();
    progress = { job: jobId, path: null, ws: null, pollTimer: null, watchdog: null, state: null,
                 wsKeys: {}, suspect: null, final: false, pollFailures: 0 };
    $("progress").hidden = false;
    $("start-job").hidden = true;
    setText("job-error", "");
    $("job-error").hidden = true;
    setText("progress-status", "Job " + jobId + ": waiting for progress…");
    $("progress-path").textContent = "connecting…";
    live = { xs: [], ys: [], labels: [] };
    openSocket(progress);
  }

  function stopTracking() {
    if (!progress) { return; }
    progress.final = true;
    clearTimeout(progress.pollTimer);
    clearInterval(progress.watchdog);
    if (progress.ws) { try { progress.ws.close(); } catch (e) { /* closed */ } }
  }

  function openSocket(pr) {
    if (!("WebSocket" in window)) { startPolling(pr, "no websocket support"); return; }
    var ws;
    try {
      ws = new WebSocket(api.ws(pr.job));
    } catch (err) {
      startPolling(pr, "websocket failed");
      return;
    }
    pr.ws = ws;
    var opened = false;
    var connectTimer = setTimeout(function () {
      if (!opened) { pr.ws = null; try { ws.close(); } catch (e) { /* closed */ } startPolling(pr, "websocket timeout"); }
    }, WS_CONNECT_TIMEOUT_MS);
    ws.onopen = function () {
      opened = true;
      clearTimeout(connectTimer);
      if (pr !== progress || pr.final) { ws.close(); return; }
      setPath("live");
      // Watchdog: a live channel that stays silent while the job moves (e.g. the embedded
      // in-process channel layer, which workers in other processes cannot reach) is detected
      // and replaced by polling; progress never stalls unnoticed.
      pr.watchdog = setInterval(function () { watchdog(pr); }, WATCHDOG_MS);
      pollOnce(pr); // the state as of now, whether or not the consumer sends it on connect
    };
    ws.onmessage = function (ev) {
      if (pr !== progress) { return; }
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (!msg || (msg.type && msg.type !== "progress") || !msg.state) { return; }
      pr.wsKeys[stateKey(msg.state)] = true;
      if (msg.points) { addLivePoints(msg.points); }
      applyState(pr, msg.state, msg.eta_s, "ws");
    };
    ws.onclose = function (ev) {
      clearTimeout(connectTimer);
      if (pr !== progress || pr.final || pr.ws !== ws) { return; }
      pr.ws = null;
      clearInterval(pr.watchdog);
      startPolling(pr, opened ? "websocket closed (" + ev.code + ")" : "websocket refused");
    };
  }

  function watchdog(pr) {
    if (pr !== progress || pr.final || pr.path !== "live") { clearInterval(pr.watchdog); return; }
    fetchJSON(api.state(pr.job)).then(function (res) {
      if (pr !== progress || pr.final || pr.path !== "live" || !res.ok) { return; }
      var key = stateKey(res.data);
      if (pr.wsKeys[key] || !pr.state || !newer(res.data, pr.state) || stateKey(pr.state) === key) { return; }
      // The server is ahead of what the websocket said. A working channel delivers that state
      // within moments; if it has not after a grace period, the channel is silent.
      setTimeout(function () {
        if (pr !== progress || pr.final || pr.path !== "live" || pr.wsKeys[key]) { return; }
        if (pr.state && newer(pr.state, res.data) && stateKey(pr.state) !== key) { return; } // moved on via ws
        clearInterval(pr.watchdog);
        var ws = pr.ws;
        pr.ws = null;
        if (ws) { try { ws.close(); } catch (e) { /* closed */ } }
        startPolling(pr, "live channel silent");
      }, WATCHDOG_GRACE_MS);
    }).catch(function () { /* the next tick tries again */ });
  }

  function startPolling(pr, reason) {
    if (pr !== progress || pr.final) { return; }
    setPath("polling", reason);
    pollOnce(pr, true);
  }

  function pollOnce(pr, repeat) {
    fetchJSON(api.state(pr.job)).then(function (res) {
      if (pr !== progress) { return; }
      if (!res.ok) {
        pr.pollFailures += 1;
        if (repeat) { setPath("polling", "error: " + describeDetail(res.data, res.status)); }
        if (res.status === 403 || res.status === 404) { return; } // no retry: shown
      } else {
        pr.pollFailures = 0;
        if (repeat && progress.path === "polling" && /^error/.test(debug.progressPathReason)) { setPath("polling"); }
        applyState(pr, res.data, res.data.eta_s, "poll");
      }
      if (repeat && !pr.final) {
        pr.pollTimer = setTimeout(function () { pollOnce(pr, true); }, POLL_MS * Math.min(6, 1 + pr.pollFailures));
      }
    }).catch(function (err) {
      pr.pollFailures += 1;
      if (repeat) {
        setPath("polling", "error: " + err);
        if (!pr.final) {
          pr.pollTimer = setTimeout(function () { pollOnce(pr, true); }, POLL_MS * Math.min(6, 1 + pr.pollFailures));
        }
      }
    });
  }

  function addLivePoints(points) {
    var xy = points.xy || [];
    var labels = points.labels || [];
    for (var i = 0; i < xy.length; i++) {
      live.xs.push(xy[i][0]);
      live.ys.push(xy[i][1]);
      live.labels.push(labels[i]);
    }
    requestDraw();
  }

  function applyState(pr, state, eta, via) {
    if (pr !== progress || !state) { return; }
    if (pr.state && !newer(state, pr.state)) { return; } // an older state arriving late
    if (pr.state && stateKey(pr.state) === stateKey(state)) { return; }
    pr.state = state;
    debug.stateHistory.push([state.status, state.tiles_done, state.tiles_total, via]);
    debug.lastState = state;
    debug.progressEvents += 1;
    var total = state.tiles_total || 0;
    var done = state.tiles_done || 0;
    var frac;
    if (state.status === "done") {
      frac = 1;
    } else if (total) {
      frac = done / total;
      if (state.status === "merging") { frac = Math.max(frac, 0.99); }
    } else {
      frac = 0;
    }
    var bar = $("progress-bar");
    bar.style.width = (100 * frac).toFixed(1) + "%";
    bar.className = "progress-bar " + state.status;
    $("progress").setAttribute("data-status", state.status);
    setText("progress-status", "Job " + state.job + ": " + state.status);
    setText("progress-text", total ? done + " / " + total + " tiles" +
      (state.batches_total ? " · " + (state.batches_done || 0) + " / " + state.batches_total + " batches" : "") : "");
    setText("progress-eta", eta !== undefined && eta !== null && !FINAL[state.status]
      ? "· about " + formatDuration(eta) + " left" : "");
    if (FINAL[state.status]) { finish(pr, state); }
  }

  function formatDuration(s) {
    s = Math.max(0, Math.round(s));
    return s < 90 ? s + " s" : Math.round(s / 60) + " min";
  }

  function finish(pr, state) {
    pr.final = true;
    clearTimeout(pr.pollTimer);
    clearInterval(pr.watchdog);
    if (pr.ws) { try { pr.ws.close(); } catch (e) { /* closed */ } pr.ws = null; }
    $("start-job").hidden = false;
    if (state.status === "done") {
      setText("job-line", "Job " + state.job + " · done");
      if (state.summary) { showScores(state.summary); }
      resetDetections(state.job);
    } else {
      var err = $("job-error");
      err.hidden = false;
      err.textContent = "Job " + state.job + " " + state.status + (state.error ? ": " + state.error : ".");
    }
  }

  $("start-job").addEventListener("submit", function (e) {
    e.preventDefault();
    var button = $("start-job-button");
    button.disabled = true;
    fetchJSON(api.startJob, { body: { slide: cfg.slide, detector: $("detector").value } }).then(function (res) {
      if (res.status !== 201) {
        var err = $("job-error");
        err.hidden = false;
        err.textContent = "The analysis could not be started: " + describeDetail(res.data, res.status);
        return;
      }
      trackJob(res.data.id);
    }).catch(function (err) {
      $("job-error").hidden = false;
      setText("job-error", "The analysis could not be started: " + err);
    }).then(function () { button.disabled = false; });
  });

  // ---- start ---------------------------------------------------------------------------------
  if (cfg.job) { loadCorrections(); loadRegions(); }
  if (cfg.runningJob) { trackJob(cfg.runningJob); }
  debug.trackJob = trackJob;
  debug.pointsNearCentre = function (label) {
    if (!viewer || !pts.n) { return null; }
    var c = viewer.viewport.viewportToImageCoordinates(viewer.viewport.getCenter(true));
    var best = null, bestD = Infinity;
    for (var i = 0; i < pts.n; i++) {
      if (pts.labels[i] !== label) { continue; }
      var dx = pts.xs[i] - c.x, dy = pts.ys[i] - c.y, dd = dx * dx + dy * dy;
      if (dd < bestD) { bestD = dd; best = { x: pts.xs[i], y: pts.ys[i], id: pts.ids[i], index: i }; }
    }
    return best;
  };
  debug.requestDraw = requestDraw;
})();
