/* The scale bar (µm), the equivalent magnification shown in the toolbar and the magnification
 * buttons (2.5 / 5 / 10 / 20 / 40×). A magnification is a screen resolution: 10× is about
 * 1.0 µm per screen pixel, 40× about 0.25 µm (objective × 10 / µm per screen px). */

import { imageZoom } from "./geometry.js";
import { $, S, setText } from "./state.js";

const NICE = [1, 2, 5];
let lastScale = null;

export function updateScalebar() {
  const info = S.info;
  if (!S.viewer || !info) { return; }
  const mpp = info.mpp_x;
  const bar = $("scalebar");
  const z = imageZoom();
  const key = mpp + ":" + z.toFixed(6);
  if (key === lastScale) { return; }
  lastScale = key;
  const mag = currentMagnification();
  if (mag !== null) {
    setText("magnification", (mag < 10 ? Math.round(mag * 10) / 10 : Math.round(mag)) + "×");
    showMagnificationButtons(mag);
  }
  if (!mpp) {
    bar.querySelector(".scalebar-label").textContent = "no scale (mpp unknown)";
    bar.querySelector(".scalebar-bar").style.width = "0px";
    return;
  }
  const umPerPx = mpp / z;
  const target = 120 * umPerPx; // µm covered by ~120 screen px
  const exp = Math.floor(Math.log10(target));
  let best = Math.pow(10, exp);
  for (let k = 0; k < 3; k++) {
    for (let i = 0; i < NICE.length; i++) {
      const candidate = NICE[i] * Math.pow(10, exp + k - 1);
      if (candidate <= target) { best = candidate; }
    }
  }
  const px = best / umPerPx;
  bar.querySelector(".scalebar-bar").style.width = px.toFixed(1) + "px";
  bar.querySelector(".scalebar-label").textContent = best >= 1000 ? (best / 1000) + " mm" : best + " µm";
}

/** The equivalent objective magnification of the view: from the mpp, else the scan's objective power. */
export function currentMagnification() {
  const info = S.info, z = imageZoom();
  if (info.mpp_x) { return 10 * z / info.mpp_x; }
  if (info.objective_power) { return info.objective_power * z; }
  return null;
}

function zoomForMagnification(mag) { // screen px per level-0 px
  const info = S.info;
  if (info.mpp_x) { return mag * info.mpp_x / 10; }
  if (info.objective_power) { return mag / info.objective_power; }
  return null;
}

function maxMagnification() {
  const vp = S.viewer.viewport;
  const z = vp.viewportToImageZoom(vp.getMaxZoom());
  const info = S.info;
  return info.mpp_x ? 10 * z / info.mpp_x : info.objective_power ? info.objective_power * z : null;
}

function showMagnificationButtons(mag) {
  const max = maxMagnification();
  document.querySelectorAll("#mag-buttons button").forEach((b) => {
    const m = Number(b.dataset.mag);
    b.disabled = max === null || m > max * 1.02; // beyond the scan's resolution (and the viewer's zoom limit)
    b.setAttribute("aria-pressed", Math.abs(mag - m) / m < 0.02 ? "true" : "false");
  });
}

/** Zoom about the centre of the view to `mag` (e.g. 10 for 10×). */
export function goToMagnification(mag, immediately) {
  const z = zoomForMagnification(mag);
  if (z === null || !S.viewer) { return false; }
  const vp = S.viewer.viewport;
  vp.zoomTo(vp.imageToViewportZoom(z), null, !!immediately);
  return true;
}

export function bindMagnificationButtons() {
  document.querySelectorAll("#mag-buttons button").forEach((b) => {
    b.addEventListener("click", () => { goToMagnification(Number(b.dataset.mag)); });
  });
}
