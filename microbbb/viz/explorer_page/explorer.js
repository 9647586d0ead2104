// microbbb explorer: shows the numbers that Python computed (the JSON above); computes none.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("data").textContent);
  const SVG = "http://www.w3.org/2000/svg";
  const N = D.records.length, M = D.backward.length, LAST = N + M;
  const LINE = 1.3 * 16, PAD = 0.3 * 16;
  const $ = (id) => document.getElementById(id);
  const tensor = {}, record = {}, madeAt = {}, history = {}, flowedAt = {};
  D.tensors.forEach((t) => { tensor[t.id] = t; history[t.id] = []; });
  D.records.forEach((r, k) => { record[r.id] = r; madeAt[r.out] = k + 1; });
  D.backward.forEach((s, b) => s.updates.forEach((u) => {
    history[u.target].push([b, u]);
    if (u.edge) flowedAt[u.edge] = [b, u];
  }));
  const state = { step: 0, view: D.start, selected: null, scale: null, bbb: null };

  // --- numbers as text ---------------------------------------------------------------------
  const num = (v) => (typeof v === "string" ? v : Number(v).toPrecision(6));
  function full(a) {
    if (!a.values) return a.text + (a.norm !== undefined ? ", norm " + num(a.norm) : "") +
      "\n(" + a.shape.join("×") + " entries: too many to list)";
    const v = a.values.map(num);
    if (a.shape.length === 2) {
      const rows = [], cols = a.shape[1];
      for (let i = 0; i < a.shape[0]; i++) rows.push(v.slice(i * cols, (i + 1) * cols).join("  "));
      return rows.join("\n");
    }
    return v.join("  ");
  }
  const shapeText = (s) => (s.length ? "(" + s.join(", ") + ")" : "scalar");

  // --- where the sweep is ------------------------------------------------------------------
  const forwardDone = () => Math.min(state.step, N);             // records computed so far
  const backwardDone = () => state.step - N - 1;                 // last reverse step shown (-1: none)
  const computed = (t) => t.leaf || madeAt[t.id] <= forwardDone();
  function adjointNow(id) {
    let now = null;
    for (const [b, u] of history[id]) if (b <= backwardDone()) now = u.after;
    return now;
  }

  // --- the drawing ---------------------------------------------------------------------------
  function el(name, attrs, parent) {
    const e = document.createElementNS(SVG, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  const fills = { param: "#cfe2ff", noise: "#ffe5b4", data: "#e9ecef", constant: "#f8f9fa",
    intermediate: "#ffffff", output: "#d1e7dd", cut: "#ffffff" };
  const view = () => D.views[state.view];

  function draw() {
    const v = view(), svg = $("graph");
    svg.textContent = "";
    const defs = el("defs", {}, svg);
    const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
      markerWidth: 12, markerHeight: 12, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" }, defs);
    el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#555" }, marker);
    Object.entries(v.clusters).forEach(([name, [x, y, w, h]]) => {
      const g = el("g", { class: "cluster", "data-scope": name }, svg);
      el("rect", { x, y, width: w, height: h, rx: 10 }, g);
      const t = el("text", { x: x + 10, y: y + 20 }, g);
      t.textContent = "▾ " + name;
      t.addEventListener("click", () => toggle(name));
    });
    v.edges.forEach((e, n) => {
      const g = el("g", { class: "edge", id: "edge-" + n }, svg);
      el("path", { d: e.d, "marker-end": "url(#arrow)" }, g);
      if (e.label) el("text", { x: e.label[0], y: e.label[1] + 5, "text-anchor": "middle" }, g);
    });
    Object.entries(v.nodes).forEach(([id, [x, y, w, h]]) => {
      const kind = id.startsWith("g:") ? "group" : id.startsWith("o") ? "op" : "tensor";
      const g = el("g", { class: "node " + kind, id: "node-" + id, "data-id": id }, svg);
      const rect = el("rect", { x: x - w / 2, y: y - h / 2, width: w, height: h, rx: kind === "op" ? 14 : 6 }, g);
      if (kind === "tensor") {
        rect.setAttribute("fill", fills[tensor[id].kind] || "#fff");
        if (tensor[id].name) g.dataset.name = tensor[id].name;
      }
      const lines = kind === "tensor" ? 4 : kind === "group" ? 2 : 1;
      for (let i = 0; i < lines; i++) {
        el("text", { x, y: y - h / 2 + PAD + LINE * (i + 0.75), "text-anchor": "middle" }, g);
      }
      g.addEventListener("click", () => (kind === "group" ? toggle(id.slice(2)) : select(id)));
    });
    zoom(state.scale);
  }

  function setLines(g, lines) {
    const texts = g.querySelectorAll("text");
    lines.forEach(([text, cls], i) => {
      if (!texts[i]) return;
      texts[i].textContent = text;
      texts[i].setAttribute("class", cls || "");
    });
  }

  function paintNodes() {
    const v = view(), fwd = forwardDone(), bwd = backwardDone();
    const active = activeIds();
    Object.keys(v.nodes).forEach((id) => {
      const g = $("node-" + id);
      g.classList.toggle("active", active.has(id));
      g.classList.toggle("selected", state.selected === id);
      if (id.startsWith("g:")) {
        const ops = D.records.filter((r) => inScope(r.scope, id.slice(2)));
        setLines(g, [["▸ " + id.slice(2), "title"], [ops.length + " ops, folded (click)", ""]]);
      } else if (id.startsWith("o")) {
        setLines(g, [[record[id].expression, ""]]);
      } else {
        const t = tensor[id], adj = adjointNow(id);
        const value = computed(t) ? ["= " + t.value.short, ""] : ["= ? (not computed yet)", "pending"];
        const grad = adj ? ["ḡ = " + adj.short, "grad"] : [bwd >= 0 && t.grad ? "ḡ = ? (waiting)" : "", "pending"];
        setLines(g, [[t.lines[0], "title"], [t.lines[1], ""], value, grad]);
        g.classList.toggle("has-grad", !!adj);
      }
    });
    void fwd;
  }

  function inScope(scope, group) { return scope === group || scope.startsWith(group + "/"); }

  function activeIds() {
    const ids = new Set(), v = view();
    const where = (id) => {
      if (v.nodes[id]) return id;
      const scope = id.startsWith("o") ? record[id].scope : tensor[id].scope;
      return v.groups.find((g) => inScope(scope, g.slice(2))) || id;
    };
    const f = state.step >= 1 && state.step <= N ? D.records[state.step - 1] : null;
    if (f) { ids.add(where(f.id)); ids.add(where(f.out)); }
    const b = backwardDone();
    if (b >= 0) {
      const s = D.backward[b];
      if (s.record) ids.add(where(s.record));
      s.updates.forEach((u) => ids.add(where(u.target)));
    }
    return ids;
  }

  function paintEdges() {
    const v = view(), b = backwardDone();
    const f = state.step >= 1 && state.step <= N ? D.records[state.step - 1].id : null;
    const pw = new Set(state.bbb ? state.bbb.path_w : []), pd = new Set(state.bbb ? state.bbb.path_direct : []);
    v.edges.forEach((e, n) => {
      const g = $("edge-" + n);
      let last = null, now = false, fwd = false, w = false, d = false;
      e.carries.forEach((id) => {
        const flow = flowedAt[id];
        if (flow && flow[0] <= b && (!last || flow[0] >= last[0])) last = flow;
        if (flow && flow[0] === b) now = true;
        if (f && (id.startsWith(f + ":") || id === f + ">out")) fwd = true;
        if (pw.has(id)) w = true;
        if (pd.has(id)) d = true;
      });
      g.setAttribute("class", "edge" + (last ? " flowed" : "") + (now ? " flowing" : "") +
        (fwd ? " forward" : "") + (w && d ? " path-both" : w ? " path-w" : d ? " path-direct" : ""));
      const label = g.querySelector("text");
      if (label) label.textContent = last ? "ḡ " + last[1].flow : "";
    });
  }

  // --- the side panel ------------------------------------------------------------------------
  function paintStep() {
    const s = state.step, body = $("step-body");
    body.textContent = "";
    const add = (tag, text, cls) => {
      const e = document.createElement(tag);
      e.textContent = text;
      if (cls) e.className = cls;
      body.appendChild(e);
      return e;
    };
    if (s === 0) {
      $("step-title").textContent = "Start: the inputs are known";
      add("p", "Press → to run the forward pass, one recorded op at a time (" + N +
        " records), then the reverse sweep (" + M + " steps) until every leaf has its gradient.");
    } else if (s <= N) {
      const r = D.records[s - 1], out = tensor[r.out];
      $("step-title").textContent = "Forward: record " + s + " of " + N;
      add("span", r.expression, "formula");
      add("p", "op " + r.op + (r.scope ? " in " + r.scope : "") + ", output " + shapeText(out.shape));
      add("span", out.v + " = " + out.value.text, "formula numbers");
      add("p", "Its VJP rules, used in the reverse sweep:", "where");
      r.rules.forEach((rule) => add("span", rule, "formula where"));
    } else {
      const b = s - N - 1, step = D.backward[b];
      $("step-title").textContent = b === 0 ? "Backward: the seed" :
        "Backward: step " + b + " of " + (M - 1);
      add("span", step.title, "formula");
      if (step.record) add("p", "ḡ of its output (complete now): " + step.g.text);
      step.updates.forEach((u) => {
        add("span", u.lhs + " += " + u.rule, "formula");
        add("span", "   = " + u.numbers, "formula numbers");
        u.where.forEach((w) => add("span", "   where " + w, "formula where"));
        add("span", "   " + u.lhs + " is now " + u.after.text, "formula");
      });
      if (b === M - 1) {
        add("p", "Done: every leaf holds its gradient:", "ok");
        D.leaves.forEach((id) => add("span", (tensor[id].name || tensor[id].v) + ": " +
          adjointNow(id).short + "   " + tensor[id].grad_note, "formula"));
      }
    }
    $("counter").textContent = s === 0 ? "start" : s <= N ? "forward " + s + " / " + N :
      "backward " + (s - N - 1) + " / " + (M - 1);
    $("slider").value = s;
  }

  function paintAdjoints() {
    const tbody = document.querySelector("#adjoint-table tbody"), b = backwardDone();
    tbody.textContent = "";
    let rows = 0;
    for (let k = 0; k <= b; k++) {
      D.backward[k].updates.forEach((u) => {
        const tr = document.createElement("tr");
        if (k === b) tr.className = "now";
        [String(k), u.lhs + " += " + u.rule, u.contribution.text, u.after.text].forEach((text, i) => {
          const td = document.createElement("td");
          td.textContent = text;
          if (i === 1) td.className = "rule";
          tr.appendChild(td);
        });
        tbody.appendChild(tr);
        rows++;
      });
    }
    $("adjoint-count").textContent = "(" + rows + " updates)";
    const now = tbody.querySelector("tr.now:last-child");
    if (now) $("adjoints").scrollTop = $("adjoints").scrollHeight;
  }

  function paintLeaves() {
    const tbody = document.querySelector("#leaves tbody");
    tbody.textContent = "";
    D.leaves.forEach((id) => {
      const t = tensor[id], adj = adjointNow(id), tr = document.createElement("tr");
      tr.dataset.leaf = id;
      const done = backwardDone() === M - 1;
      [t.name || t.v, shapeText(t.shape), adj ? adj.text : "—", done ? t.grad_note : ""].forEach((text, i) => {
        const td = document.createElement("td");
        td.textContent = text;
        if (i === 2) td.className = "leaf-adjoint";
        if (i === 3) td.className = text === "= .grad" ? "ok" : text.startsWith(".grad differs") ? "bad" : "";
        tr.appendChild(td);
      });
      tr.addEventListener("click", () => select(id));
      tbody.appendChild(tr);
    });
  }

  function paintDetail() {
    const id = state.selected;
    $("detail").hidden = !id;
    if (!id) return;
    if (id.startsWith("o")) {
      const r = record[id];
      $("detail-name").textContent = r.expression;
      $("detail-info").textContent = "op " + r.op + (r.scope ? ", scope " + r.scope : "") +
        "; its output: " + tensor[r.out].v;
      const out = tensor[r.out];
      $("detail-value").textContent = computed(out) ? full(out.value) : "not computed yet";
      const adj = adjointNow(r.out);
      $("detail-grad").textContent = adj ? full(adj) : "not reached yet";
      $("detail-grad-when").textContent = "of its output";
      $("detail-dotgrad").textContent = "";
      return;
    }
    const t = tensor[id], adj = adjointNow(id);
    $("detail-name").textContent = t.v + (t.name ? "  " + t.name : "");
    $("detail-info").textContent = t.kind + ", shape " + shapeText(t.shape) +
      (t.scope ? ", scope " + t.scope : "");
    $("detail-value").textContent = computed(t) ? full(t.value) : "not computed yet";
    $("detail-grad-when").textContent = "at this step";
    $("detail-grad").textContent = adj ? full(adj) : t.grad ? "not reached yet" : "none (no gradient flows here)";
    const done = backwardDone() === M - 1;
    $("detail-dotgrad").textContent = t.dotgrad && done ? ".grad of this leaf: " +
      t.dotgrad.text : "";
  }

  function paintBBB() {
    $("bbb").hidden = D.bbb.length === 0;
    const body = $("bbb-body");
    body.textContent = "";
    const p = state.bbb;
    if (!p) return;
    const add = (tag, text, cls, id) => {
      const e = document.createElement(tag);
      e.textContent = text;
      if (cls) e.className = cls;
      if (id) e.id = id;
      body.appendChild(e);
      return e;
    };
    const mu = p.kind === "mu";
    add("span", mu ? "grad_mu = df/dw + df/dmu" : "grad_rho = df/dw · eps · sigmoid(rho) + df/drho", "formula");
    add("h3", mu ? "through w: df/dw" : "through w: df/dw · eps · sigmoid(rho)", "legend-w");
    add("pre", full(p.through_w), "", "bbb-through_w");
    add("h3", mu ? "direct (log q): df/dmu" : "direct (log q): df/drho", "legend-direct");
    add("pre", full(p.direct), "", "bbb-direct");
    add("h3", "sum = the gradient of " + p.name);
    add("pre", full(p.total), "", "bbb-total");
  }

  function paint() {
    paintNodes(); paintEdges(); paintStep(); paintAdjoints(); paintLeaves(); paintDetail();
  }

  // --- moving --------------------------------------------------------------------------------
  function go(step) {
    state.step = Math.max(0, Math.min(LAST, step));
    paint();
    follow();
  }
  function follow() {
    const v = view(), panel = $("graph-panel"), ids = [...activeIds()];
    const id = ids.find((i) => v.nodes[i]);
    if (!id) return;
    const [x, y] = v.nodes[id], s = state.scale;
    panel.scrollTo({ left: x * s - panel.clientWidth / 2, top: y * s - panel.clientHeight / 2 });
  }
  function select(id) {
    state.selected = state.selected === id ? null : id;
    paintNodes(); paintDetail();
  }
  function toggle(scope) {
    const start = D.start ? D.start.split("|") : [];
    const next = start.includes(scope) ? start.filter((s) => s !== scope) : start.concat([scope]);
    const key = next.sort().join("|");
    state.view = state.view === key || !D.views[key] ? D.start : key;
    draw(); paint();
  }
  function zoom(scale) {
    const v = view(), panel = $("graph-panel");
    if (scale === null) scale = Math.max(0.8, Math.min(1.3, (panel.clientWidth - 20) / v.width));
    state.scale = scale;
    const svg = $("graph");
    svg.setAttribute("viewBox", "0 0 " + v.width + " " + v.height);
    svg.setAttribute("width", v.width * scale);
    svg.setAttribute("height", v.height * scale);
  }

  $("first").onclick = () => go(0);
  $("prev").onclick = () => go(state.step - 1);
  $("next").onclick = () => go(state.step + 1);
  $("last").onclick = () => go(LAST);
  $("slider").max = LAST;
  $("slider").oninput = (e) => go(Number(e.target.value));
  $("zoom-in").onclick = () => { zoom(state.scale * 1.25); follow(); };
  $("zoom-out").onclick = () => { zoom(state.scale / 1.25); follow(); };
  $("zoom-fit").onclick = () => { zoom(null); follow(); };
  document.addEventListener("keydown", (e) => {
    if (e.target && e.target.tagName === "SELECT") return;
    const jump = e.shiftKey ? 10 : 1;
    const moves = { ArrowRight: state.step + jump, ArrowDown: state.step + jump,
      ArrowLeft: state.step - jump, ArrowUp: state.step - jump, Home: 0, End: LAST };
    if (e.key in moves) { e.preventDefault(); go(moves[e.key]); }
  });
  D.bbb.forEach((p, i) => {
    const o = document.createElement("option");
    o.value = String(i);
    o.textContent = p.name;
    $("bbb-param").appendChild(o);
  });
  $("bbb-param").onchange = (e) => {
    state.bbb = e.target.value === "" ? null : D.bbb[Number(e.target.value)];
    paintBBB(); paintEdges();
    if (state.bbb) { state.selected = state.bbb.tensor; paintNodes(); paintDetail(); }
    $("bbb").scrollIntoView({ block: "start" });
  };
  draw();
  paintBBB();
  go(0);
  document.body.dataset.ready = "yes";
})();
