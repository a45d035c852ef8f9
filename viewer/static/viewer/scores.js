/* The Scores block: counts, TPS, its 95 % interval, category and the near-cut-off flag.
 *
 * Only the server's corrected scores are shown (GET/POST corrections, regions: viewer.scores.job_scores,
 * the numbers the report states). Until they arrive, or when they cannot be read, the block shows "—"
 * and why: never the job's uncorrected whole-slide summary, nor a category computed here. */

import { $, formatNumber, setText } from "./state.js";

const SCORE_CELLS = ["count-positive", "count-negative", "tps", "tps-interval", "tps-category"];

function showStatus(message) {
  const el = $("scores-status");
  if (!el) { return; }
  el.hidden = !message;
  el.textContent = message || "";
}

/** Empty the block ("—" everywhere) and say why: loading, or the server's reason for not answering. */
export function clearScores(reason) {
  SCORE_CELLS.forEach((id) => { setText(id, "—"); });
  const intervalEl = $("tps-interval");
  if (intervalEl) { intervalEl.title = ""; }
  ["near-cutoff", "cut-note"].forEach((id) => {
    const el = $(id);
    if (el) { el.hidden = true; el.textContent = ""; }
  });
  showStatus(reason);
}

export function showScores(scores) {
  if (!scores) { return; }
  showStatus("");
  const counts = scores.counts || {};
  setText("count-positive", formatNumber(counts.positive));
  setText("count-negative", formatNumber(counts.negative));
  const tps = scores.tps;
  // Two decimals, as the report, its PDF and FHIR state it (49.96 % shown as "50.0 %" beside "1-49 %" misled).
  setText("tps", tps === null || tps === undefined ? "—" : Number(tps).toFixed(2) + " %");
  // The server's category is the one the report states (the case's cut-off table); where there is none the
  // server says why (category_note: "insufficient for scoring (n < 100): …", research use, no case).
  setText("tps-category", scores.tps_category || scores.category_note || "—");
  // The 95 % interval (sampling + the detector's measured error) and the near-cut-off flag:
  // the server computes both (viewer.scores.job_scores); scores without them show "—".
  const interval = scores.tps_interval;
  const intervalEl = $("tps-interval");
  if (intervalEl) {
    // Printed by the server, rounded outward as the report prints it and reads the near-cut-off flag
    // (rounded to nearest here, 49.96 showed "50.0" where the report said 49.9 and the flag disagreed).
    intervalEl.textContent = interval ? scores.tps_interval_text : "—";
    intervalEl.title = scores.detector_error || "";
  }
  // No cut-off table for the case's assay and indication: no near-cut-off check, and the server says so
  // (cutoff_note) where the warning would be.
  const near = $("near-cutoff");
  if (near) {
    near.hidden = !scores.near_cutoff && !scores.cutoff_note;
    near.textContent = scores.near_cutoff ? scores.uncertainty : scores.cutoff_note || "";
  }
  // The slide-wide positivity cut was read outside the regions that now count (viewer.scores).
  const cutNote = $("cut-note");
  if (cutNote && "cut_note" in scores) {
    cutNote.hidden = !scores.cut_note;
    cutNote.textContent = scores.cut_note || "";
  }
}
