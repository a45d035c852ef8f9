// The viewer script's save rules against a stub DOM and a scripted fetch (tests/viewer/test_js_save_rules.py).
// argv[2]: the file URL of a copy of the served static/ folder (viewer/ beside common/).
import "./dom_stub.mjs";
const base = process.argv[2];
const C = await import(base + "/viewer/corrections.js");
const R = await import(base + "/viewer/regions.js");
const H = await import(base + "/viewer/history.js");
const Sel = await import(base + "/viewer/selection.js");
const St = await import(base + "/viewer/state.js");
const { S, debug } = St;
const E = globalThis.__elements;
const text = (id) => (E[id] ? E[id].textContent : undefined);
let failures = 0;
function check(name, ok, extra) { console.log((ok ? "ok   " : "FAIL ") + name + (ok ? "" : "  " + JSON.stringify(extra))); if (!ok) failures++; }
const tick = () => new Promise((r) => setTimeout(r, 20));
H.setHistoryHandlers({ correction: C.postCorrection, addRegion: (r) => R.postRegion(r), deleteRegion: R.removeRegion,
                       replaceRegion: (id, r) => R.postRegion(r, id) });
const scores = (tps) => ({ counts: { positive: 3, negative: 1, other: 0 }, tps, tps_category: "TPS 50-100 % (server)",
  tps_interval: null, near_cutoff: false, uncertainty: "", cut_note: "" });
function answers(map) { globalThis.__answer = (url, call) => { for (const [k, f] of map) { if (k(url, call)) { return f(url, call); } } return { status: 404, body: { detail: "x" } }; }; }
const isCorr = (u, c) => u === "/api/viewer/jobs/5/corrections/" && c.method === "GET";
const isRegs = (u, c) => u === "/api/viewer/jobs/5/regions/" && c.method === "GET";

// 1. consistent load: the version is taken, the server's scores and category shown
answers([[isCorr, () => ({ status: 200, body: { version: 3, items: [], scores: scores(75), carry_over: null } })],
         [isRegs, () => ({ status: 200, body: { version: 3, items: [], scores: scores(75) } })]]);
await C.loadHumanLayer(); await tick();
check("consistent load takes the version", S.corrections.version === 3, S.corrections.version);
check("server scores shown", text("tps") === "75.00 %" && text("tps-category") === "TPS 50-100 % (server)", [text("tps"), text("tps-category")]);

// 2. versions differ on every read: no version, saving refused locally, conflict shown
globalThis.__calls.length = 0;
answers([[isCorr, () => ({ status: 200, body: { version: 3, items: [], scores: scores(75), carry_over: null } })],
         [isRegs, () => ({ status: 200, body: { version: 4, items: [], scores: scores(75) } })]]);
await C.loadHumanLayer(); await tick();
check("differing versions: read again, then no version", S.corrections.version === null && globalThis.__calls.length === 6,
      [S.corrections.version, globalThis.__calls.length]);
check("differing versions: conflict shown", !E["conflict"].hidden && /kept changing/.test(text("conflict-message")), text("conflict-message"));
globalThis.__calls.length = 0;
const refused = await C.postCorrection({ op: "delete", detection: 1 });
check("no save without one version", refused === null && globalThis.__calls.length === 0, globalThis.__calls);

// 3. corrections 503: scores cleared with the reason
answers([[isCorr, () => ({ status: 503, body: { detail: "the detections of job 5 cannot be read" } })],
         [isRegs, () => ({ status: 503, body: { detail: "the detections of job 5 cannot be read" } })]]);
(await import(base + "/viewer/scores.js")).showScores(scores(75));
await C.loadHumanLayer(); await tick();
check("503: scores cleared", text("tps") === "—" && text("count-positive") === "—" && text("tps-category") === "—", [text("tps")]);
check("503: reason shown", !E["scores-status"].hidden && /cannot be read/.test(text("scores-status")), text("scores-status"));
// 3b. no category (too few cells, research use, no case): the server's reason is shown in its place
(await import(base + "/viewer/scores.js")).showScores({ ...scores(75), tps_category: null,
  category_note: "insufficient for scoring (n < 100): 4 viable tumour cells counted" });
check("no category: the server's reason shown", text("tps-category").startsWith("insufficient for scoring (n < 100)"),
      text("tps-category"));
// 3c. no cut-off table for the assay and indication: no warning, the server's note in its place
(await import(base + "/viewer/scores.js")).showScores({ ...scores(75), cutoff_note: "no near-cut-off check: none apply" });
check("no cut-offs: the note shown", !E["near-cutoff"].hidden && text("near-cutoff") === "no near-cut-off check: none apply",
      text("near-cutoff"));

// 4. a 409 on a region delete keeps the page's version
S.corrections.version = 3;
answers([[(u, c) => c.method === "DELETE", () => ({ status: 409, body: { detail: "changed by colleague", version: 9 } })]]);
const deleted = await R.removeRegion(7);
check("409 on delete: version kept", deleted === false && S.corrections.version === 3, [deleted, S.corrections.version]);
check("409 on delete: conflict shown", !E["conflict"].hidden && /colleague/.test(text("conflict-message")), text("conflict-message"));

// 5. an edit of vertices is one request (POST with replaces), its undo and redo too
S.corrections.version = 3;
S.regions = [{ id: 7, kind: "tumour", include: true, vertices: [[0, 0], [10, 0], [10, 10]], author: "p" }];
let next = 20;
globalThis.__calls.length = 0;
answers([[(u, c) => u === "/api/viewer/jobs/5/regions/" && c.method === "POST",
          (u, c) => ({ status: 201, body: { version: c.body.base_version + 1, scores: scores(70), item: { id: next++ } } })],
         [isRegs, () => ({ status: 200, body: { version: 4, items: S.regions, scores: scores(70) } })]]);
R.startEdit(7);
S.editing.vertices[1] = [20, 0];
await R.saveEdit(); await tick();
const writes = () => globalThis.__calls.filter((c) => c.method !== "GET");
check("edit: one POST with replaces, no DELETE", writes().length === 1 && writes()[0].body.replaces === 7 &&
      writes()[0].body.vertices[1][0] === 20, writes());
globalThis.__calls.length = 0;
await H.undo(); await tick();
check("undo edit: one POST replacing the edited region", writes().length === 1 && writes()[0].body.replaces === 20 &&
      writes()[0].body.vertices[1][0] === 10, writes());
globalThis.__calls.length = 0;
await H.redo(); await tick();
check("redo edit: one POST replacing the restored region", writes().length === 1 && writes()[0].body.replaces === 21, writes());
// a refused replace (409): the version stays, the step stays undoable
globalThis.__calls.length = 0;
const v = S.corrections.version;
answers([[(u, c) => c.method === "POST", () => ({ status: 409, body: { detail: "colleague", version: 99 } })]]);
await H.undo(); await tick();
check("refused undo: version kept, step kept", S.corrections.version === v && debug.history.undo === 1, [S.corrections.version, debug.history]);

// 6. an add refused as a duplicate selects the named point
S.corrections.version = 3;
S.pts = { n: 1, xs: new Float32Array([100]), ys: new Float32Array([100]), labels: new Int8Array([1]),
          scores: new Float32Array([0.9]), ids: [12], corrected: [false], box: null, total: 1, job: 5 };
S.selected = null;
answers([[(u, c) => c.method === "POST", () => ({ status: 400, body: { detail: "detection 12 (positive) is 0.0 µm from here", point: 12 } })]]);
const item = await C.postCorrection({ op: "add", x: 100, y: 100, label: 1 }); await tick();
check("duplicate add: nothing, the point selected", item === null && S.selected && S.selected.id === 12 && /detection 12/.test(text("tool-status")),
      [item, S.selected, text("tool-status")]);

// 7. add mode: a click on a loaded point selects it, no request
S.viewer = { viewport: { imageToViewerElementCoordinates: (p) => p, viewerElementToImageCoordinates: (p) => p,
                         viewportToImageZoom: () => 1, getZoom: () => 1, getBounds: () => ({ getBoundingBox: () => null }), viewportToImageRectangle: () => ({ x: 0, y: 0, width: 1000, height: 1000 }) } };
S.info = { width: 1000, height: 1000, mpp_x: 0.5 };
debug.mode = "points"; S.addMode = true; S.selected = null; globalThis.__calls.length = 0;
Sel.onCanvasClick({ quick: true, position: { x: 101, y: 100 } }); await tick();
check("add mode on a point: selected, no add", S.selected && S.selected.id === 12 && writes().length === 0, [S.selected, writes()]);
globalThis.__calls.length = 0;
answers([[(u, c) => c.method === "POST", () => ({ status: 201, body: { version: 4, scores: scores(70), item: { id: 30, point_id: "c30" } } })]]);
Sel.onCanvasClick({ quick: true, position: { x: 400, y: 400 } }); await tick();
check("add mode off a point: one add", writes().length === 1 && writes()[0].body.op === "add", writes());
S.viewer = null;
console.log(failures ? failures + " FAILED" : "all ok");
process.exit(failures ? 1 : 0);
