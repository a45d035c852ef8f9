/* Work of this page not yet on the server: its saves (sent one at a time) and a region being drawn or
 * edited. While there is some, leaving the page asks first (beforeunload).
 *
 * Saves in a queue: every correction and region save carries the version it is based on, and the server
 * refuses one based on an older version (409: someone saved in between). Two saves of this page sent
 * together carried the same version, so the second was refused as a colleague's conflict naming the user
 * themself. Now each save is sent only once the one before it is answered, and takes its base_version when
 * it is sent (from that answer, versionSaved): rapid edits by one person all land, and a colleague's save in
 * between is still a conflict.
 *
 * After a real conflict (409: a colleague's save, or the job moved on) every save waiting behind the refused
 * one carries the same old base version and would be refused the same way, one request and one message
 * each: they are not sent (stopAfterConflict) and the page lists them as not saved until it is reloaded. */

import { S, debug } from "./state.js";

const queue = [];
let sending = false;
let guarded = false;

// A save not answered within answerMs is given up (its request aborted, the caller shows it as not saved)
// and the queue moves on: one request that never returns (a stalled connection) would otherwise hold every
// later save for good, silently. The server may still have stored it: the next save is then refused as a
// conflict (its base version is old) and "Reload corrections" shows what was stored; nothing passes unseen.
export const saveTiming = { answerMs: 30000 };

let current = null; // the save sent and not yet answered

/** Run `send(signal)` (-> a promise; `signal` aborts its request when no answer came in time) once every save
 * queued before it has been answered or given up; resolves as it does, or to `unsent` when a conflict before
 * it stopped it (stopAfterConflict). `what` names the edit for the user ("the deletion of detection 12"). */
export function queueSave(send, what = "an edit", unsent = null) {
  return new Promise((resolve, reject) => {
    queue.push({ send, resolve, reject, what, unsent });
    if (!sending) { sendNext(); }
  });
}

/** The save in flight was refused by a real conflict: the saves waiting behind it are not sent (each
 * resolves to its `unsent` value, as a refused save). Returns what was refused and what was not sent, for
 * the page to show. Saves queued later (the user acting after being told) are sent as usual. */
export function stopAfterConflict() {
  const stopped = queue.splice(0, queue.length);
  stopped.forEach((save) => { save.resolve(save.unsent); });
  updateUnloadGuard();
  return { refused: current ? current.what : null, notSent: stopped.map((save) => save.what) };
}

function sendNext() {
  const next = queue.shift();
  sending = !!next;
  current = next || null;
  updateUnloadGuard();
  if (!next) { return; }
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error("no answer from the server within " +
    Math.round(saveTiming.answerMs / 1000) + " s (it may have been stored: reload corrections to see)")), saveTiming.answerMs);
  // The queue moves on before the caller hears the answer: by then this save no longer counts as pending.
  Promise.resolve().then(() => next.send(abort.signal)).then(
    (value) => { clearTimeout(timer); sendNext(); next.resolve(value); },
    (err) => { clearTimeout(timer); sendNext(); next.reject(err); });
}

/** Saves sent or waiting, not yet answered. */
export function pendingSaves() { return queue.length + (sending ? 1 : 0); }

function editChanged(e) {
  return e.vertices.length !== e.original.length ||
    e.vertices.some((v, i) => v[0] !== e.original[i][0] || v[1] !== e.original[i][1]);
}

/** True while leaving the page would lose something: a save not yet answered, a region with vertices
 * placed but not closed, or moved vertices not saved. */
export function hasUnsavedWork() {
  return pendingSaves() > 0 || !!(S.drawing && S.drawing.vertices.length) || !!(S.editing && editChanged(S.editing));
}

function onBeforeUnload(e) {
  if (!hasUnsavedWork()) { return; }
  e.preventDefault();
  e.returnValue = ""; // older browsers ask only with a returnValue set
}

/** Listen for beforeunload only while there is unsaved work (a page with the listener leaves no
 * back-forward cache entry in some browsers); called after every change of the work above. */
export function updateUnloadGuard() {
  const want = hasUnsavedWork();
  if (want !== guarded) {
    guarded = want;
    if (want) {
      window.addEventListener("beforeunload", onBeforeUnload);
    } else {
      window.removeEventListener("beforeunload", onBeforeUnload);
    }
  }
  debug.unloadGuard = guarded;
}

debug.hasUnsavedWork = hasUnsavedWork;
