/* The Scores block: counts, TPS, its 95 % interval, category and the near-cut-off flag. */

import { $, formatNumber, setText } from "./state.js";

function tpsCategory(value) {
  // Mirrors analysis.scoring.tps_category (22C3 NSCLC cut-offs) for a summary without a category key.
  if (value === null || value === undefined) { return null; }
  if (value < 1) { return "TPS < 1%"; }
  if (value < 50) { return "TPS 1-49%"; }
  return "TPS >= 50%";
}

export function showScores(scores) {
  if (!scores) { return; }
  const counts = scores.counts || {};
  setText("count-positive", formatNumber(counts.positive));
  setText("count-negative", formatNumber(counts.negative));
  const tps = scores.tps;
  // Two decimals, as the report, its PDF and FHIR state it (49.96 % shown as "50.0 %" beside "1-49 %" misled).
  setText("tps", tps === null || tps === undefined ? "—" : Number(tps).toFixed(2) + " %");
  // The server's category is the one the report states (the case's cut-off table); null where the report
  // states none (research use, too few cells, a clone without cut-offs) stays "—".
  setText("tps-category", ("tps_category" in scores ? scores.tps_category : tpsCategory(tps)) || "—");
  // The 95 % interval (sampling + the detector's measured error) and the near-cut-off flag:
  // the server computes both (viewer.services.job_scores); a summary without them shows "—".
  const interval = scores.tps_interval;
  const intervalEl = $("tps-interval");
  if (intervalEl) {
    intervalEl.textContent = interval ? interval.low.toFixed(1) + "–" + interval.high.toFixed(1) + " %" : "—";
    intervalEl.title = scores.detector_error || "";
  }
  const near = $("near-cutoff");
  if (near) {
    near.hidden = !scores.near_cutoff;
    near.textContent = scores.near_cutoff ? scores.uncertainty : "";
  }
  // The slide-wide positivity cut was read outside the regions that now count (viewer.scores).
  const cutNote = $("cut-note");
  if (cutNote && "cut_note" in scores) {
    cutNote.hidden = !scores.cut_note;
    cutNote.textContent = scores.cut_note || "";
  }
}

/** The finished job's summary rendered into the page (json_script), shown before any request. */
export function showInitialScores() {
  const summaryEl = $("viewer-job-summary");
  if (summaryEl) {
    try { showScores(JSON.parse(summaryEl.textContent)); } catch (e) { /* no summary yet */ }
  }
}
