// The viewer's saves are sent one at a time (viewer/static/viewer/unsaved.js), in Node against a stub DOM and a
// fake server with the real compare-and-set rule (a save based on another version than the server's is 409);
// tests/viewer/test_js_save_queue.py. argv[2]: the file URL of a copy of the served static/ folder.
import "./dom_stub.mjs";
const base = process.argv[2];
const C = await import(base + "/viewer/corrections.js");
const R = await import(base + "/viewer/regions.js");
const U = await import(base + "/viewer/unsaved.js");
const { S, debug } = await import(base + "/viewer/state.js");
const E = globalThis.__elements;
let failures = 0;
function check(name, ok, extra) { console.log((ok ? "ok   " : "FAIL ") + name + (ok ? "" : "  " + JSON.stringify(extra))); if (!ok) failures++; }
const wait = (ms) => new Promise((r) => setTimeout(r, ms));

// The fake server: 150 ms per write, at most `inFlight` seen at once; `serverVersion` bumped by a colleague at will.
let serverVersion = 3, inFlight = 0, maxInFlight = 0;
const writes = [];
const scores = { counts: { positive: 1, negative: 1, other: 0 }, tps: 50 };
let hangNext = false; // the next write never gets an answer (a stalled connection): only its abort ends it
globalThis.fetch = (url, init) => {
  const method = (init && init.method) || "GET";
  const body = init && init.body ? JSON.parse(init.body) : undefined;
  if (method !== "GET" && hangNext) {
    hangNext = false;
    writes.push({ method, url, body, status: "hung" });
    return new Promise((resolve, reject) => {
      if (init.signal) { init.signal.addEventListener("abort", () => reject(init.signal.reason)); }
    });
  }
  if (method === "GET") {
    const items = url.includes("/regions/") ? [] : [];
    return Promise.resolve({ ok: true, status: 200, text: () => Promise.resolve(JSON.stringify({ version: serverVersion, items, scores })) });
  }
  inFlight += 1; maxInFlight = Math.max(maxInFlight, inFlight);
  return new Promise((resolve) => setTimeout(() => {
    inFlight -= 1;
    let status, answer;
    if (body.base_version !== serverVersion) {
      status = 409; answer = { detail: "This slide was corrected by colleague since you loaded it; reload to see their change.", version: serverVersion };
    } else {
      serverVersion += 1; status = method === "DELETE" ? 200 : 201;
      answer = { version: serverVersion, scores, item: { id: 100 + serverVersion, point_id: body.op === "add" ? "c" + serverVersion : null } };
    }
    writes.push({ method, url, body, status });
    resolve({ ok: status < 300, status, text: () => Promise.resolve(JSON.stringify(answer)) });
  }, 150));
};
function points() {
  S.pts = { n: 3, xs: new Float32Array([10, 50, 90]), ys: new Float32Array([10, 50, 90]), labels: new Int8Array([1, 2, 1]),
            scores: new Float32Array([0.9, 0.8, 0.7]), ids: [101, 102, 103], corrected: [false, false, false], box: null, total: 3, job: 5 };
}

// 1. Two corrections made while the first is in flight: both land, one request at a time, no conflict.
S.corrections.version = 3; points();
const a = C.sendCorrection({ op: "delete", detection: 101 });
await wait(40);
check("a save in flight is unsaved work", U.hasUnsavedWork() && U.pendingSaves() === 1 && debug.unloadGuard === true,
      [U.pendingSaves(), debug.unloadGuard]);
const b = C.sendCorrection({ op: "reclassify", detection: 102, label: 1 });
check("the second waits", U.pendingSaves() === 2 && writes.length === 0, [U.pendingSaves(), writes.length]);
const results = [await a, await b];
check("both saved", results[0] === true && results[1] === true && writes.map((w) => w.status).join() === "201,201", [results, writes]);
check("each based on the version the one before gave", writes[0].body.base_version === 3 && writes[1].body.base_version === 4,
      writes.map((w) => w.body.base_version));
check("one request in flight at a time", maxInFlight === 1, maxInFlight);
check("no conflict shown", E["conflict"].hidden === true, E["conflict-message"] && E["conflict-message"].textContent);
check("the page is at the server's version", S.corrections.version === 5 && serverVersion === 5, [S.corrections.version, serverVersion]);
check("both applied here", S.pts.labels[1] === 1 && S.pts.corrected[1] === true, [Array.from(S.pts.labels), S.pts.corrected]);
check("nothing pending afterwards", !U.hasUnsavedWork() && debug.unloadGuard === false, [U.pendingSaves(), debug.unloadGuard]);

// 2. Corrections and region saves share the queue: a region drawn while a correction is in flight is based on its answer.
writes.length = 0; maxInFlight = 0; points();
const c = C.sendCorrection({ op: "delete", detection: 103 });
const r = R.postRegion({ kind: "tumour", vertices: [[0, 0], [100, 0], [100, 100]] });
const d = R.removeRegion(42);
await Promise.all([c, r, d]);
check("correction, region, deletion: in order, each on the last answer",
      writes.map((w) => w.method + " " + w.body.base_version + " " + w.status).join(", ") === "POST 5 201, POST 6 201, DELETE 7 200" &&
      writes[2].url.endsWith("base_version=7"), writes.map((w) => [w.method, w.url, w.body.base_version, w.status]));
check("one request in flight at a time (mixed)", maxInFlight === 1, maxInFlight);

// 3. A colleague's save in between is still a conflict, shown with the server's words; the version is kept.
writes.length = 0; points();
serverVersion += 1; // the colleague
const e = await C.postCorrection({ op: "delete", detection: 101 });
check("a colleague's save: refused and shown", e === null && writes[0].status === 409 && E["conflict"].hidden === false &&
      /colleague/.test(E["conflict-message"].textContent), [e, writes, E["conflict-message"].textContent]);
check("a colleague's save: the page keeps its version", S.corrections.version === 8, S.corrections.version);
check("a refused save leaves nothing pending", !U.hasUnsavedWork(), U.pendingSaves());

// 3b. A save that never gets an answer is given up after saveTiming.answerMs and shown as not saved; the saves
// queued behind it are sent (they used to wait for ever, and leaving the page always asked).
writes.length = 0; points(); S.corrections.version = serverVersion;
U.saveTiming.answerMs = 300;
hangNext = true;
const hung = C.postCorrection({ op: "delete", detection: 101 });
const after = C.postCorrection({ op: "reclassify", detection: 102, label: 1 });
// (the message stays until the next save is sent; that one, answered, hides it: the edit not saved never
// applied here, so the page still shows the cell as it is on the server)
check("the unanswered save is shown as not saved", (await hung) === null &&
      /not saved: .*no answer from the server/.test(E["conflict-message"].textContent), E["conflict-message"].textContent);
check("the save behind it is sent and lands", (await after) !== null && writes.length === 2 && writes[1].status === 201,
      writes.map((w) => w.status));
check("nothing left pending", !U.hasUnsavedWork(), U.pendingSaves());
U.saveTiming.answerMs = 30000;

// 3c. A real conflict (409) stops the saves queued behind the refused one: based on the same old version, they were
// each sent, refused and shown in turn. Now they are not sent, resolve as not saved and are listed once, under the
// one message, until "Reload corrections"; a save the user makes after being told is sent as usual.
C.bindCorrectionTools();
writes.length = 0; points(); S.corrections.version = serverVersion;
serverVersion += 1; // the colleague
const refused = C.sendCorrection({ op: "reclassify", detection: 103, label: 2 });
const behind = [C.sendCorrection({ op: "delete", detection: 102 }),
                R.postRegion({ kind: "necrosis", vertices: [[0, 0], [50, 0], [50, 50]] }), R.removeRegion(42)];
const outcomes = [await refused, ...(await Promise.all(behind))];
check("a conflict: only the refused save was sent", writes.length === 1 && writes[0].status === 409,
      writes.map((w) => [w.method, w.body.base_version, w.status]));
check("the saves behind it resolve as not saved", JSON.stringify(outcomes) === "[false,false,null,false]", outcomes);
check("one message: the server's", E["conflict"].hidden === false && /colleague/.test(E["conflict-message"].textContent),
      E["conflict-message"].textContent);
check("each listed as not saved", E["conflict-not-saved"].hidden === false && JSON.stringify(debug.notSaved.slice(-4)) ===
      JSON.stringify(["the reclassification of detection 103 as negative (refused)", "the deletion of detection 102 (not sent)",
                      "the necrosis region drawn (3 vertices) (not sent)", "the deletion of region 42 (not sent)"]), debug.notSaved);
check("nothing left pending after a conflict", !U.hasUnsavedWork() && debug.unloadGuard === false, U.pendingSaves());
const retried = await C.postCorrection({ op: "delete", detection: 102 });
check("a save made after being told is sent (and refused: this page has not seen the change)",
      retried === null && writes.length === 2 && writes[1].status === 409, writes.map((w) => w.status));
check("the same edit tried again is listed once", debug.notSaved.filter((n) => n.includes("detection 102")).length === 1 &&
      debug.notSaved.includes("the deletion of detection 102 (refused)"), debug.notSaved);
E["conflict-reload"].listeners.click();
await wait(20);
check("reloaded: the box and the list are gone, the server's version taken", E["conflict"].hidden === true &&
      debug.notSaved.length === 0 && S.corrections.version === serverVersion, [debug.notSaved, S.corrections.version]);
check("after the reload a save lands", (await C.postCorrection({ op: "delete", detection: 102 })) !== null &&
      writes[writes.length - 1].status === 201, writes.map((w) => w.status));

// 4. A region being drawn, or moved vertices, are unsaved work; a closed or cancelled one is not.
S.corrections.version = serverVersion;
S.drawing = { kind: "tumour", vertices: [] };
check("drawing, no vertex yet: nothing to lose", !U.hasUnsavedWork());
S.drawing.vertices.push([1, 2]); U.updateUnloadGuard();
check("a vertex placed: unsaved, guarded", U.hasUnsavedWork() && debug.unloadGuard === true, debug.unloadGuard);
R.setDrawMode(false);
check("cancelled: not guarded", !U.hasUnsavedWork() && debug.unloadGuard === false, debug.unloadGuard);
S.regions = [{ id: 7, kind: "tumour", include: true, vertices: [[0, 0], [10, 0], [10, 10]], author: "p" }];
R.startEdit(7);
check("editing, nothing moved: nothing to lose", !U.hasUnsavedWork());
S.editing.vertices[1] = [20, 0]; U.updateUnloadGuard();
check("a vertex moved: unsaved, guarded", U.hasUnsavedWork() && debug.unloadGuard === true);
R.stopEdit();
check("edit cancelled: not guarded", !U.hasUnsavedWork() && debug.unloadGuard === false);

console.log(failures ? failures + " FAILED" : "all ok");
process.exit(failures ? 1 : 0);
