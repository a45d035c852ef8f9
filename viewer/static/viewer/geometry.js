/* Image (level-0 px) <-> screen geometry of the viewer. */

import { S } from "./state.js";

// image (level-0 px) -> viewer element px, as x' = a x + c y + e, y' = b x + d y + f
export function affine() {
  const vp = S.viewer.viewport;
  const s = 4096;
  const o = vp.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, 0));
  const ax = vp.imageToViewerElementCoordinates(new OpenSeadragon.Point(s, 0));
  const ay = vp.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, s));
  return { a: (ax.x - o.x) / s, b: (ax.y - o.y) / s, c: (ay.x - o.x) / s, d: (ay.y - o.y) / s, e: o.x, f: o.y };
}

export function imageZoom() { // screen px per level-0 px
  return S.viewer.viewport.viewportToImageZoom(S.viewer.viewport.getZoom(true));
}

export function viewBox(margin) {
  const vp = S.viewer.viewport;
  const rect = vp.viewportToImageRectangle(vp.getBounds(true).getBoundingBox());
  const mx = rect.width * margin;
  const my = rect.height * margin;
  return {
    x0: Math.max(0, Math.floor(rect.x - mx)),
    y0: Math.max(0, Math.floor(rect.y - my)),
    x1: Math.min(S.info.width, Math.ceil(rect.x + rect.width + mx)),
    y1: Math.min(S.info.height, Math.ceil(rect.y + rect.height + my)),
  };
}

export function boxArea(b) { return Math.max(0, b.x1 - b.x0) * Math.max(0, b.y1 - b.y0); }

export function contains(outer, inner) {
  return outer && inner.x0 >= outer.x0 && inner.y0 >= outer.y0 && inner.x1 <= outer.x1 && inner.y1 <= outer.y1;
}

/** Screen (device px) position of an image point under the affine `t`. */
export function toDevice(t, x, y) {
  return { x: (t.a * x + t.c * y + t.e) * S.dpr, y: (t.b * x + t.d * y + t.f) * S.dpr };
}
