/* Platform (level-0 px, pixel centres at whole numbers) <-> screen geometry of the viewer.
 *
 * OpenSeadragon's image coordinates put pixel i over [i, i + 1); the platform's put its centre at i
 * (common/osd.js). Every conversion with OpenSeadragon goes through platformToOsd / osdToPlatform
 * here, once: the overlay draws and the click handlers read platform coordinates only. */

import { osdToPlatform, platformToOsd } from "../common/osd.js";
import { S } from "./state.js";

// platform (level-0 px) -> viewer element px, as x' = a x + c y + e, y' = b x + d y + f. Measured through
// OpenSeadragon, so it follows the zoom, the pan and the rotation.
export function affine() {
  const vp = S.viewer.viewport;
  const s = 4096;
  const o = vp.imageToViewerElementCoordinates(platformToOsd(0, 0));
  const ax = vp.imageToViewerElementCoordinates(platformToOsd(s, 0));
  const ay = vp.imageToViewerElementCoordinates(platformToOsd(0, s));
  return { a: (ax.x - o.x) / s, b: (ax.y - o.y) / s, c: (ay.x - o.x) / s, d: (ay.y - o.y) / s, e: o.x, f: o.y };
}

/** The platform position {x, y} under a viewer element position (an OpenSeadragon event's `position`). */
export function platformAt(position) {
  return osdToPlatform(S.viewer.viewport.viewerElementToImageCoordinates(position));
}

/** The viewer element position of a platform point. */
export function screenAt(x, y) {
  return S.viewer.viewport.imageToViewerElementCoordinates(platformToOsd(x, y));
}

export function imageZoom() { // screen px per level-0 px
  return S.viewer.viewport.viewportToImageZoom(S.viewer.viewport.getZoom(true));
}

/** The view (the bounding box of a rotated one) in platform coordinates, padded by `margin` of its size on
 * each side and cut to the slide: the box of the viewport queries, whose points have x0 <= x < x1. */
export function viewBox(margin) {
  const vp = S.viewer.viewport;
  const rect = vp.viewportToImageRectangle(vp.getBounds(true).getBoundingBox());
  const o = osdToPlatform(rect);
  const mx = rect.width * margin;
  const my = rect.height * margin;
  return {
    x0: Math.max(0, Math.floor(o.x - mx)),
    y0: Math.max(0, Math.floor(o.y - my)),
    x1: Math.min(S.info.width, Math.ceil(o.x + rect.width + mx)),
    y1: Math.min(S.info.height, Math.ceil(o.y + rect.height + my)),
  };
}

export function boxArea(b) { return Math.max(0, b.x1 - b.x0) * Math.max(0, b.y1 - b.y0); }

export function contains(outer, inner) {
  return outer && inner.x0 >= outer.x0 && inner.y0 >= outer.y0 && inner.x1 <= outer.x1 && inner.y1 <= outer.y1;
}

/** Screen (device px) position of a platform point under the affine `t`. */
export function toDevice(t, x, y) {
  return { x: (t.a * x + t.c * y + t.e) * S.dpr, y: (t.b * x + t.d * y + t.f) * S.dpr };
}
