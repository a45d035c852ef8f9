/* The scale bar (µm) and the equivalent magnification shown in the toolbar. */

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
  if (info.objective_power) {
    setText("magnification", (info.objective_power * z).toFixed(z * info.objective_power < 10 ? 1 : 0) + "×");
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
