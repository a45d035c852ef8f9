/* What a re-run did with the earlier run's corrections (viewer/carry.py: carry_over of GET
 * corrections): a notice at the top of the panel says what was carried, lists each correction that
 * was not (what, where, why) with a button that goes to its place, and stays dismissed for this job. */

import { platformToOsd } from "../common/osd.js";
import { goToMagnification } from "./scalebar.js";
import { $, S, cfg } from "./state.js";

const DISMISSED = "pdl1-carry-dismissed-";

function dismissed(job) {
  try { return window.localStorage.getItem(DISMISSED + job) === "1"; } catch (err) { return false; }
}

function remember(job) {
  try { window.localStorage.setItem(DISMISSED + job, "1"); } catch (err) { /* private mode: this page only */ }
}

/** Centre the view on a level-0 point at 20× (where a pathologist checks a cell's class). */
export function goTo(x, y) {
  const vp = S.viewer.viewport, c = platformToOsd(x, y);
  vp.panTo(vp.imageToViewportCoordinates(c));
  if (!goToMagnification(20)) { // no resolution known: about 200 px across
    vp.fitBounds(vp.imageToViewportRectangle(c.x - 100, c.y - 100, 200, 200));
  }
}

function describe(m) {
  const what = m.op === "delete" ? "deleted cell" : m.op === "reclassify" ? "reclassified to " + m.label
    : m.op === "add" ? "added " + (m.label || "") + " cell" : m.op;
  return what + " at (" + Math.round(m.x) + ", " + Math.round(m.y) + "): " + (m.reason || "not carried");
}

/** Show the carry report of the open job (null: nothing was carried, the notice stays hidden). */
export function showCarryOver(report) {
  const box = $("carry-notice");
  if (!box) { return; }
  S.carryOver = report || null;
  if (!report || dismissed(cfg.job)) { box.hidden = true; return; }
  $("carry-message").textContent = report.message || "";
  const list = $("carry-missed");
  list.replaceChildren();
  (report.not_carried || []).forEach((m) => {
    const item = document.createElement("li");
    const go = document.createElement("button");
    go.type = "button";
    go.className = "carry-go";
    go.textContent = "Go there";
    go.addEventListener("click", () => goTo(m.x, m.y));
    item.append(describe(m) + " ", go);
    list.append(item);
  });
  box.classList.toggle("carry-incomplete", (report.not_carried || []).length > 0);
  box.hidden = false;
}

export function bindCarryNotice() {
  const button = $("carry-dismiss");
  if (!button) { return; }
  button.addEventListener("click", () => {
    remember(cfg.job);
    $("carry-notice").hidden = true;
  });
}
