// Minimal DOM / fetch stubs for the viewer's ES modules in Node (tests/viewer/test_js_save_rules.py): just what
// they touch at import and in the checked paths; fetch answers come from globalThis.__answer, calls are recorded.
const elements = {};
function el(id) {
  const e = { id, textContent: "", hidden: false, title: "", dataset: {}, innerHTML: "", style: { setProperty() {} },
    disabled: false, value: "", checked: false, children: [],
    classList: { toggle() {}, add() {}, remove() {}, contains() { return false; } },
    setAttribute(k, v) { this[k] = v; }, getAttribute(k) { return this[k]; },
    listeners: {}, addEventListener(type, fn) { this.listeners[type] = fn; },
    appendChild(c) { this.children.push(c); return c; }, getContext() { return null; },
    getBoundingClientRect() { return { x: 0, y: 0, width: 100, height: 100 }; } };
  return e;
}
globalThis.__elements = elements;
const page = el("pdl1-viewer-page");
page.dataset = { slide: "1", job: "5", infoUrl: "/info" };
elements["pdl1-viewer-page"] = page;
const vocab = el("label-vocabulary");
vocab.textContent = JSON.stringify({ codes: { positive: 1, negative: 2 }, names: { 1: "positive", 2: "negative" },
  rgb: { 1: [220, 30, 40], 2: [245, 200, 0] } });
elements["label-vocabulary"] = vocab;
globalThis.document = {
  getElementById(id) { if (!elements[id]) { elements[id] = el(id); } return elements[id]; },
  body: { dataset: { apiRoot: "/api/", wsRoot: "/ws/" } },
  cookie: "", querySelector() { return null; }, createElement(tag) { return el(tag); },
  createTextNode(t) { return { textContent: t }; },
  documentElement: { style: { setProperty() {} } }, addEventListener() {},
};
globalThis.window = globalThis;
globalThis.addEventListener = () => {};
globalThis.removeEventListener = () => {};
globalThis.requestAnimationFrame = () => 0;
globalThis.localStorage = { getItem() { return null; }, setItem() {} };
globalThis.OpenSeadragon = { Point: function (x, y) { this.x = x; this.y = y; } };
// fetch: answered by globalThis.__answer(url, init) -> {status, body}; every call recorded
globalThis.__calls = [];
globalThis.fetch = (url, init) => {
  const call = { url, method: (init && init.method) || "GET", body: init && init.body ? JSON.parse(init.body) : undefined };
  globalThis.__calls.push(call);
  const a = globalThis.__answer(url, call);
  return Promise.resolve({ ok: a.status >= 200 && a.status < 300, status: a.status,
                           text: () => Promise.resolve(JSON.stringify(a.body)) });
};
globalThis.__answer = () => ({ status: 404, body: { detail: "not stubbed" } });
