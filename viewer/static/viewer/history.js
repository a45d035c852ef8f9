/* Undo / redo of this page's corrections and region edits (Ctrl+Z, Ctrl+Shift+Z or Ctrl+Y).
 *
 * Every step goes through the server like any edit (with the version it is based on, so a
 * colleague's save in between is a conflict, never overwritten): a correction is undone by an
 * "undo" correction naming it and redone by sending it again; a drawn region is undone by
 * deleting it, a deleted one restored by drawing it again, a vertex edit by putting the
 * previous vertices back in place of the edited region (one save: both outlines change or neither).
 * A redone added point gets a new id: later steps naming the old id follow it (`renamed`). */

import { $, S, debug, setText } from "./state.js";

const undoStack = [];
const redoStack = [];
const renamed = {}; // old added-point id -> its id after a redo
let busy = false;
// {correction: send(body) -> item | null, addRegion(region) -> item | null, deleteRegion(id) -> bool,
//  replaceRegion(id, region) -> item | null: the region in place of region id, in one save}
let handlers = null;

export function setHistoryHandlers(h) { handlers = h; }

export function pointId(id) {
  let key = String(id);
  while (renamed[key] !== undefined) { key = renamed[key]; }
  return key === String(id) ? id : key;
}

/** A saved edit, undoable. kinds: correction {body, item}, region-add {region, id},
 * region-delete {region, id}, region-edit {before: {region, id}, after: {region, id}}. */
export function recordEdit(entry) {
  undoStack.push(entry);
  redoStack.length = 0;
  showHistory();
}

/** After a reload (a colleague's change): steps based on the old state are dropped. */
export function clearHistory() {
  undoStack.length = 0;
  redoStack.length = 0;
  showHistory();
}

function showHistory() {
  debug.history = { undo: undoStack.length, redo: redoStack.length, busy };
  $("undo").disabled = busy || !undoStack.length;
  $("redo").disabled = busy || !redoStack.length;
  $("undo").title = undoStack.length ? "Undo " + describe(undoStack[undoStack.length - 1]) + " (Ctrl+Z)" : "Nothing to undo (Ctrl+Z)";
  $("redo").title = redoStack.length ? "Redo " + describe(redoStack[redoStack.length - 1]) + " (Ctrl+Shift+Z or Ctrl+Y)"
    : "Nothing to redo (Ctrl+Shift+Z or Ctrl+Y)";
}

function describe(entry) {
  if (entry.kind === "correction") {
    return { add: "the added point", delete: "the deletion", reclassify: "the reclassification" }[entry.body.op] || "the correction";
  }
  return { "region-add": "the drawn region", "region-delete": "the region deletion", "region-edit": "the vertex edit" }[entry.kind];
}

async function undoStep(entry) {
  if (entry.kind === "correction") {
    const item = await handlers.correction({ op: "undo", target: entry.item.id });
    return !!item;
  }
  if (entry.kind === "region-add") { return handlers.deleteRegion(entry.id); }
  if (entry.kind === "region-delete") {
    const item = await handlers.addRegion(entry.region);
    if (item) { entry.id = item.id; }
    return !!item;
  }
  // region-edit: the previous vertices back in place of the edited region, in one save (both or neither)
  const item = await handlers.replaceRegion(entry.after.id, entry.before.region);
  if (!item) { return false; }
  entry.before.id = item.id;
  return true;
}

async function redoStep(entry) {
  if (entry.kind === "correction") {
    const body = Object.assign({}, entry.body);
    if (body.detection !== undefined) { body.detection = pointId(body.detection); }
    const item = await handlers.correction(body);
    if (!item) { return false; }
    if (entry.item.point_id && item.point_id) { renamed[String(entry.item.point_id)] = String(item.point_id); }
    entry.item = item;
    return true;
  }
  if (entry.kind === "region-add") {
    const item = await handlers.addRegion(entry.region);
    if (item) { entry.id = item.id; }
    return !!item;
  }
  if (entry.kind === "region-delete") { return handlers.deleteRegion(entry.id); }
  const item = await handlers.replaceRegion(entry.before.id, entry.after.region);
  if (!item) { return false; }
  entry.after.id = item.id;
  return true;
}

async function step(from, to, run, verb) {
  if (busy || !from.length || !handlers || S.drawing || S.editing) { return; }
  const entry = from.pop();
  busy = true;
  showHistory();
  let ok = false;
  try {
    ok = await run(entry);
  } finally {
    busy = false;
  }
  if (ok) {
    to.push(entry);
    setText("tool-status", verb + " " + describe(entry));
  } else {
    from.push(entry); // refused (a conflict or an error, shown): nothing changed, the step stays
  }
  showHistory();
}

export function undo() { return step(undoStack, redoStack, undoStep, "Undone:"); }
export function redo() { return step(redoStack, undoStack, redoStep, "Redone:"); }

export function bindHistory() {
  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  showHistory();
}
