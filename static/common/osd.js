/* OpenSeadragon set-up shared by the viewer and the annotation pages (ES module).
 *
 * OpenSeadragon itself is the vendored classic script (vendor/openseadragon), loaded before the
 * page's module; the button images come from the page's data-osd-images (static files, no CDN).
 */

/**
 * The drawer to ask for. OpenSeadragon's WebGL drawer is the fastest on a GPU, but through a
 * software WebGL (SwiftShader, llvmpipe: workstations or VMs without GPU acceleration) the 2D
 * canvas drawer is much cheaper per frame.
 */
export function preferredDrawer() {
  try {
    const gl = document.createElement("canvas").getContext("webgl");
    if (!gl) { return "canvas"; }
    const ext = gl.getExtension("WEBGL_debug_renderer_info");
    const renderer = ext ? String(gl.getParameter(ext.UNMASKED_RENDERER_WEBGL)) : "";
    const lose = gl.getExtension("WEBGL_lose_context");
    if (lose) { lose.loseContext(); }
    if (/swiftshader|llvmpipe|softpipe|software/i.test(renderer)) { return "canvas"; }
  } catch (e) {
    return "canvas";
  }
  return ["webgl", "canvas"];
}

/**
 * A viewer in element `id` on `tileSources`, with the site's defaults (navigator bottom right,
 * same-origin tiles, no click-to-zoom: clicks belong to the page's tools); `options` override.
 * `state` (optional) counts loaded tiles in state.tilesLoaded; `onError(message)` hears a slide
 * that cannot be opened.
 */
export function createViewer({ id = "osd", imagesUrl, tileSources, options = {}, state = null, onError = null }) {
  const viewer = OpenSeadragon(Object.assign({
    id,
    prefixUrl: imagesUrl,
    tileSources,
    drawer: "canvas",
    showNavigator: true,
    navigatorPosition: "BOTTOM_RIGHT",
    showRotationControl: false,
    visibilityRatio: 0.5,
    animationTime: 0.3,
    crossOriginPolicy: false,
    gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: false },
    gestureSettingsTouch: { clickToZoom: false },
  }, options));
  if (state) {
    state.viewer = viewer;
    viewer.addHandler("tile-loaded", () => { state.tilesLoaded += 1; });
  }
  if (onError) {
    viewer.addHandler("open-failed", (e) => onError("The slide could not be opened: " + (e.message || "unknown error")));
  }
  return viewer;
}

/** Fit the view to an image rectangle (level-0 px) padded by `pad` times its longer side. */
export function fitImageRect(viewer, x, y, w, h, pad = 0) {
  const p = Math.max(w, h) * pad;
  viewer.viewport.fitBounds(viewer.viewport.imageToViewportRectangle(x - p, y - p, w + 2 * p, h + 2 * p), true);
}
