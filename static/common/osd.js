/* OpenSeadragon set-up shared by the viewer and the annotation pages (ES module).
 *
 * OpenSeadragon itself is the vendored classic script (vendor/openseadragon), loaded before the
 * page's module; the button images come from the page's data-osd-images (static files, no CDN).
 */

/**
 * Pixel convention. The platform (detections, annotation points, fields, regions; analysis and the
 * database) puts pixel i's centre at i, so the pixel spans [i - 0.5, i + 0.5); OpenSeadragon's image
 * coordinates put pixel i over [i, i + 1). Every overlay converts here, once, at its boundary with
 * OpenSeadragon: without it every drawn point sat half a pixel up-left of its pixel and every click
 * was stored half a pixel right-down of where it was made.
 */
export const OSD_PIXEL_SHIFT = 0.5;

/** A platform (level-0, pixel-centre) position as an OpenSeadragon image point. */
export function platformToOsd(x, y) {
  return new OpenSeadragon.Point(x + OSD_PIXEL_SHIFT, y + OSD_PIXEL_SHIFT);
}

/** An OpenSeadragon image point as a platform (level-0, pixel-centre) position {x, y}. */
export function osdToPlatform(point) {
  return { x: point.x - OSD_PIXEL_SHIFT, y: point.y - OSD_PIXEL_SHIFT };
}

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
 * that cannot be opened. OpenSeadragon's "f" key (mirror the slide) is always off: the overlays
 * draw and read positions unmirrored, so a mirrored slide put every marker over another nucleus.
 * Its "r"/"R" keys (rotate) only where the page's overlay follows rotation (`allowRotation`).
 */
export function createViewer({ id = "osd", imagesUrl, tileSources, options = {}, state = null, onError = null,
                               allowRotation = false }) {
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
  viewer.addHandler("canvas-key", (e) => {
    const code = e.originalEvent && e.originalEvent.keyCode;
    if (code === 70 || (code === 82 && !allowRotation)) { e.preventDefaultAction = true; }  // 70 f, 82 r
  });
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
