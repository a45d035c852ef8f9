/* Keyboard shortcuts of the viewer page (listed in the side panel's Keys block). */

import { deleteSelected, reclassify, setAddMode } from "./corrections.js";
import { requestDraw } from "./draw.js";
import { setLayer } from "./queries.js";
import { redo, undo } from "./history.js";
import { finishRegion, saveEdit, setDrawMode, setHotspots, stopEdit } from "./regions.js";
import { setRuler } from "./ruler.js";
import { rotate } from "./main.js";
import { showSelection } from "./selection.js";
import { NEGATIVE, POSITIVE, S } from "./state.js";

function typingIn(target) {
  const tag = (target && target.tagName) || "";
  return tag === "SELECT" || tag === "TEXTAREA" || (target && target.isContentEditable) ||
    (tag === "INPUT" && !/^(checkbox|radio|button|submit|reset)$/.test(target.type));
}

function onHistoryKey(e) {
  // Ctrl+Z undo; Ctrl+Shift+Z or Ctrl+Y redo (Cmd on a Mac). In a text field the browser's own undo.
  if (!(e.ctrlKey || e.metaKey) || e.altKey || typingIn(e.target)) { return; }
  const key = e.key.toLowerCase();
  if (key === "z" && !e.shiftKey) { undo(); } else if ((key === "z" && e.shiftKey) || key === "y") { redo(); } else { return; }
  e.preventDefault();
}

function onKey(e) {
  if (e.ctrlKey || e.metaKey) { onHistoryKey(e); return; }
  if (e.altKey) { return; }
  if (typingIn(e.target) && e.key !== "Escape") { return; }
  const viewer = S.viewer, layers = S.layers;
  const inViewer = viewer && viewer.canvas.contains(document.activeElement);
  switch (e.key) {
    case "p": setLayer("positive", !layers.positive); break;
    case "n": setLayer("negative", !layers.negative); break;
    case "h": setLayer("heatmap", !layers.heatmap); break;
    case "r": if (!inViewer) { rotate(90); } break; // OSD rotates itself when it has the focus
    case "R": if (!inViewer) { rotate(-90); } break;
    case "1": reclassify(POSITIVE); break;
    case "2": reclassify(NEGATIVE); break;
    case "x": case "Delete": deleteSelected(); break;
    case "m": setAddMode(!S.addMode); break;
    case "g": setDrawMode(!S.drawing); break;
    case "t": setHotspots(!layers.hotspots); break;
    case "l": setRuler(!(S.ruler && S.ruler.on)); break;
    case "Enter":
      if (S.drawing) { finishRegion(); } else if (S.editing) { saveEdit(); } else { return; }
      break;
    case "Escape":
      setDrawMode(false);
      setAddMode(false);
      setRuler(false);
      stopEdit();
      S.selected = null;
      showSelection();
      requestDraw();
      break;
    default: return;
  }
  e.preventDefault();
}

export function bindKeys() {
  document.addEventListener("keydown", onKey);
}
