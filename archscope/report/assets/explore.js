/* archscope's interactive diagram. The data (one forward at the finest grain, see
   archscope/analysis/explore.py) is folded in the browser: a view is the set of opened calls and
   repeated runs; each leaf node is drawn as its outermost ancestor that is not open, and Graphviz
   (Viz.js, inlined) lays the view out again after every change. */
(function () {
  "use strict";
  // Every lookup stays inside this page's own root: a notebook may show several pages at once.
  var root = document.currentScript.closest(".archscope");
  function el(id) { return root.querySelector("#" + id); }
  var D = JSON.parse(el("archscope-data").textContent);
  var view = el("view");
  var canvas = el("canvas");
  var details = el("details");
  var status = el("status");
  var colorSelect = el("color-by");
  var sideBox = el("side-branches");
  var search = el("search");
  var legend = el("legend");

  var opened = new Set(D.start || []);
  var groupOf = {}, groups = {};
  D.groups.forEach(function (g) { groups[g.id] = g; g.members.forEach(function (m) { groupOf[m] = g.id; }); });
  var leaf = {};
  D.nodes.forEach(function (n) { leaf[n.id] = n; });
  var children = {};  // call id → whether it has anything inside it to show
  D.nodes.forEach(function (n) { n.anc.forEach(function (c) { children[c] = true; }); });

  var viz = null, transform = {x: 0, y: 0, k: 1}, keyOf = {}, selected = null, hits = [], hitIndex = -1;
  var state = root.archscope = window.archscope = {ready: false, renders: 0, lastRenderMs: 0, firstPaintMs: null,
                      opened: opened, open: function (k) { opened.add(k); return render(); },
                      close: function (k) { opened.delete(k); return render(); }};

  // ------------------------------------------------------------------ folding

  function drawnAs(n) {
    var chain = n.anc.concat([n.id]);
    for (var i = 0; i < chain.length; i++) {
      var k = chain[i], g = groupOf[k];
      if (g && !opened.has(g)) return g;
      if (!opened.has(k)) return k;
    }
    return n.id;
  }

  function containersOf(key) {
    // The opened calls and runs a drawn key sits inside, outermost first.
    var calls;
    if (groups[key]) calls = callChain(groups[key].parent);
    else if (D.calls[key]) calls = callChain(D.calls[key].parent);
    else calls = leaf[key].anc.slice();
    var out = [];
    calls.forEach(function (c) { if (groupOf[c]) out.push(groupOf[c]); out.push(c); });
    if (!groups[key] && groupOf[key]) out.push(groupOf[key]);
    return out;
  }

  function callChain(c) {
    var chain = [];
    while (c) { chain.unshift(c); c = D.calls[c].parent; }
    return chain;
  }

  function info(key) {
    // What a drawn key stands for: name, type, shapes, costs.
    var g = groups[key], c = D.calls[key], n = leaf[key];
    if (g) {
      var first = item(g.members[0]), last = item(g.members[g.members.length - 1]);
      var paths = g.members.map(function (m) { return item(m).name; });
      return {key: key, kind: "group", name: first.name + " … " + last.name.split(".").pop(), paths: paths,
              type: g.type + " ×" + g.members.length, params: g.params, trainable: g.trainable,
              flops: g.flops, in: first.in, out: last.out, openable: true};
    }
    if (c) return {key: key, kind: "call", name: c.path + (c.call ? " (call " + (c.call + 1) + ")" : ""),
                   paths: [c.path], type: c.type, params: c.params, trainable: c.trainable, flops: c.flops,
                   in: c.in, out: c.out, openable: !!children[key]};
    var paths = n.kind === "module" ? [n.name] : [];
    return {key: key, kind: n.kind, name: n.name, paths: paths, type: n.type, params: n.params,
            trainable: n.trainable, flops: n.flops, in: n.in, out: n.out, then: n.then, openable: false};
  }

  function item(k) {
    var c = D.calls[k];
    return c ? {name: c.path, in: c.in, out: c.out} : {name: leaf[k].name, in: leaf[k].in, out: leaf[k].out};
  }

  function metric(inf, by) {
    if (by === "flops") return inf.flops || 0;
    if (by === "params") return inf.params || 0;
    var field = by === "memory" ? "holds" : "seconds", total = 0;
    inf.paths.forEach(function (p) { var r = D.rows[p]; if (r && r[field]) total += r[field]; });
    return total;
  }

  function computeView() {
    var keys = [], seen = {}, members = {}, edges = [], edgeSeen = {};
    D.nodes.forEach(function (n) {
      var k = drawnAs(n);
      if (!seen[k]) { seen[k] = true; keys.push(k); members[k] = []; }
      members[k].push(n);
    });
    var hidden = {};
    if (!sideBox.checked) keys.forEach(function (k) {
      hidden[k] = members[k].every(function (n) { return n.dead; });
    });
    D.edges.forEach(function (e) {
      var s = drawnAs(leaf[e[0]]), t = drawnAs(leaf[e[1]]);
      if (s === t || hidden[s] || hidden[t]) return;
      var id = s + "\u0000" + t;
      if (edgeSeen[id]) { edgeSeen[id].labels.indexOf(e[2]) < 0 && edgeSeen[id].labels.push(e[2]); return; }
      edgeSeen[id] = {s: s, t: t, labels: [e[2]]};
      edges.push(edgeSeen[id]);
    });
    return {keys: keys.filter(function (k) { return !hidden[k]; }), members: members, edges: edges,
            hiddenCount: keys.filter(function (k) { return hidden[k]; }).length};
  }

  // ------------------------------------------------------------------ DOT

  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }
  function quote(s) { return '"' + String(s).replace(/\\/g, "\\\\").replace(/"/g, '\\"') + '"'; }
  function human(x) {
    x = Number(x || 0);
    var units = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "K"]];
    for (var i = 0; i < units.length; i++) if (Math.abs(x) >= units[i][0]) return (x / units[i][0]).toFixed(2).replace(/\.?0+$/, "") + units[i][1];
    return String(Math.round(x * 100) / 100);
  }
  function humanBytes(x) {
    var units = [[Math.pow(2, 30), "GiB"], [Math.pow(2, 20), "MiB"], [1024, "KiB"]];
    for (var i = 0; i < units.length; i++) if (x >= units[i][0]) return (x / units[i][0]).toFixed(1) + " " + units[i][1];
    return x + " B";
  }
  function seconds(s) {
    if (s >= 1) return s.toFixed(2) + " s";
    if (s >= 1e-3) return (s * 1e3).toFixed(2) + " ms";
    return (s * 1e6).toFixed(1) + " µs";
  }
  function shade(share) {
    var t = Math.sqrt(Math.max(0, Math.min(1, share))), lo = [255, 255, 255], hi = [222, 84, 44];
    return "#" + lo.map(function (l, i) { var v = Math.round(l + (hi[i] - l) * t).toString(16); return v.length < 2 ? "0" + v : v; }).join("");
  }

  function label(inf) {
    if (inf.kind === "input" || inf.kind === "output") return "<<b>" + esc(inf.name) + "</b><br/>" + esc(inf.out || "") + ">";
    if (inf.kind === "op") {
      var then = inf.then && inf.then.length ? " → " + inf.then.join(", ") : "";
      return "<" + esc(inf.name + then) + (inf.flops ? "<br/>" + human(inf.flops) + " FLOPs" : "") + ">";
    }
    var cost = [];
    if (inf.params) cost.push(human(inf.params) + " params");
    if (inf.flops) cost.push(human(inf.flops) + " FLOPs");
    var kind = inf.type + (inf.then && inf.then.length ? " → " + inf.then.join(", ") : "");
    return "<<b>" + esc(inf.name) + "</b>" + (inf.openable ? " ⊕" : "") + "<br/>" + esc(kind) +
           (cost.length ? "<br/>" + esc(cost.join(" · ")) : "") + ">";
  }

  function toDot(v) {
    var by = colorSelect.value, top = 0, infos = {};
    keyOf = {};
    v.keys.forEach(function (k, i) {
      infos[k] = info(k);
      keyOf["k" + i] = k;
      if (infos[k].kind === "call" || infos[k].kind === "group" || infos[k].kind === "module") top = Math.max(top, metric(infos[k], by));
    });
    var failedKey = D.failed ? (leaf[D.failed] ? drawnAs(leaf[D.failed]) : D.failed) : null;
    var tree = {children: {}, keys: []};
    v.keys.forEach(function (k) {
      var at = tree;
      containersOf(k).forEach(function (c) { at = at.children[c] = at.children[c] || {children: {}, keys: []}; });
      at.keys.push(k);
    });
    var index = {};
    v.keys.forEach(function (k, i) { index[k] = "k" + i; });
    var lines = ["digraph archscope {",
      '  graph [rankdir=' + D.direction + ', fontname="Helvetica", fontsize=11, nodesep=0.25, ranksep=0.3];',
      '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, fillcolor="#ffffff", color="#555555", margin="0.12,0.04"];',
      '  edge [fontname="Helvetica", fontsize=8, color="#777777", fontcolor="#444444", arrowsize=0.6, decorate=true];'];
    var clusterCount = 0;
    function emit(node, indent) {
      Object.keys(node.children).forEach(function (c) {
        var name = groups[c] ? info(c).name + "  (" + info(c).type + ")" : D.calls[c].path + "  (" + D.calls[c].type + ")";
        lines.push(indent + "subgraph cluster_" + (clusterCount++) + " {");
        lines.push(indent + '  id=' + quote("c:" + c) + '; class="container"; label=' + quote(name + "  ⊖") +
                   '; labeljust=l; style="rounded,dashed"; color="#9aa7b4"; fontsize=10; fontcolor="#4a5a6a";');
        emit(node.children[c], indent + "  ");
        lines.push(indent + "}");
      });
      node.keys.forEach(function (k) {
        var inf = infos[k], attrs = {label: label(inf), id: quote(index[k]), class: quote("k-" + inf.kind)};
        if (inf.kind === "input" || inf.kind === "output") { attrs.fillcolor = '"#dbe9f6"'; }
        else if (inf.kind === "op") { attrs.shape = "ellipse"; attrs.style = "filled"; attrs.fillcolor = '"#eeeeee"'; attrs.fontsize = 9; attrs.height = 0.3; }
        else if (top && by !== "none") attrs.fillcolor = quote(shade(metric(inf, by) / top));
        if (inf.kind === "group") attrs.peripheries = 2;
        if (k === failedKey) {
          attrs.color = '"#c0262d"'; attrs.penwidth = 3; attrs.fillcolor = '"#f8d0d0"';
          attrs.label = attrs.label.replace(/>$/, '<br/><font color="#c0262d"><b>✗ failed here</b></font>>');
        }
        if (v.members[k].every(function (n) { return n.dead; })) { attrs.style = '"rounded,filled,dashed"'; attrs.color = '"#aaaaaa"'; }
        lines.push(indent + index[k] + " [" + Object.keys(attrs).map(function (a) { return a + "=" + attrs[a]; }).join(", ") + "];");
      });
    }
    emit(tree, "  ");
    // A source that feeds many nodes (a transformer's position embeddings, its mask) would pull every
    // block towards it: its edges are drawn light and do not shape the layout.
    var fanOut = {};
    v.edges.forEach(function (e) { fanOut[e.s] = (fanOut[e.s] || 0) + 1; });
    v.edges.forEach(function (e) {
      // (and carry no label: each label is one more thing to lay out; the source's node says its shape)
      var attrs = fanOut[e.s] > 4 ? 'constraint=false, style=dashed, color="#c4c4c4"' : "label=" + quote(e.labels.join(", "));
      lines.push("  " + index[e.s] + " -> " + index[e.t] + " [" + attrs + "];");
    });
    lines.push("}");
    return {dot: lines.join("\n"), top: top, by: by};
  }

  // ------------------------------------------------------------------ drawing

  function render(anchor) {
    if (!viz) return Promise.resolve();
    var started = performance.now();
    var before = anchor ? screenOf(anchor) : null;
    var v = computeView(), made = toDot(v);
    var svg;
    try { svg = viz.renderSVGElement(made.dot); }
    catch (error) { status.textContent = "layout failed: " + error; return Promise.resolve(); }
    canvas.innerHTML = "";
    canvas.appendChild(svg);
    svg.removeAttribute("width"); svg.removeAttribute("height");
    var box = svg.viewBox.baseVal;
    svg.setAttribute("width", box.width); svg.setAttribute("height", box.height);
    svg.querySelectorAll("title").forEach(function (t) { t.remove(); });  // the page's own panel says more
    wire(svg);
    drawLegend(made);
    if (before) {
      var after = screenOf(anchor);
      if (after) { transform.x += before.x - after.x; transform.y += before.y - after.y; apply(); }
    } else fit();
    markHits(); markSelected();
    state.renders++;
    state.lastRenderMs = performance.now() - started;
    state.visible = v.keys.slice();
    status.textContent = v.keys.length + " nodes" + (v.hiddenCount ? " · " + v.hiddenCount + " side branch" +
      (v.hiddenCount > 1 ? "es" : "") + " hidden" : "") + " · laid out in " + Math.round(state.lastRenderMs) + " ms";
    return Promise.resolve();
  }

  function nodeElement(key) {
    for (var id in keyOf) if (keyOf[id] === key) return canvas.querySelector('[id="' + id + '"]');
    return canvas.querySelector('[id="c:' + key.replace(/"/g, '\\"') + '"]');
  }
  function screenOf(key) {
    var el = nodeElement(key);
    if (!el) return null;
    var r = el.getBoundingClientRect();
    return {x: r.left + r.width / 2, y: r.top + r.height / 2};
  }

  function wire(svg) {
    svg.querySelectorAll("g.node").forEach(function (g) {
      var key = keyOf[g.id];
      if (key === undefined) return;
      g.setAttribute("data-key", key);
      g.style.cursor = "pointer";
      g.addEventListener("mouseenter", function () { show(key); });
      g.addEventListener("click", function (event) {
        if (dragged) return;
        event.stopPropagation();
        var inf = info(key);
        select(key, true);
        if (inf.openable) { opened.add(key); render(key); }
      });
    });
    svg.querySelectorAll("g.cluster").forEach(function (g) {
      var key = g.id.slice(2);
      g.setAttribute("data-key", key);
      var text = g.querySelector("text");
      if (!text) return;
      text.style.cursor = "pointer";
      text.addEventListener("click", function (event) {
        if (dragged) return;
        event.stopPropagation();
        opened.delete(key);
        render(key);
      });
    });
  }

  function drawLegend(made) {
    if (made.by === "none" || !made.top) { legend.innerHTML = ""; return; }
    var fmt = made.by === "memory" ? humanBytes : made.by === "time" ? seconds : human;
    legend.innerHTML = '<span>' + made.by + ' of the nodes drawn:</span> <span class="ramp"></span> ' +
      '<span>0</span> … <span>' + esc(fmt(made.top)) + '</span>';
  }

  // ------------------------------------------------------------------ details, table, selection

  function row(label, value) { return value === undefined || value === null || value === "" ? "" : "<tr><th>" + label + "</th><td>" + value + "</td></tr>"; }

  function show(key) {
    var inf = info(key), r = inf.paths.length === 1 ? D.rows[inf.paths[0]] : null, sums = {holds: 0, seconds: 0, train_flops: 0};
    inf.paths.forEach(function (p) { var x = D.rows[p]; if (x) { sums.holds += x.holds || 0; sums.seconds += x.seconds || 0; sums.train_flops += x.train_flops || 0; } });
    var frozen = inf.params && inf.trainable !== undefined ? inf.params - inf.trainable : null;
    var html = "<h3>" + esc(inf.name) + "</h3><table>" +
      row("type", esc(inf.type)) +
      row("input", esc(inf.in || "")) +
      row(r && r.calls > 1 ? "outputs (every call)" : "output", esc(r && r.shapes ? r.shapes : (inf.out || ""))) +
      row("params", inf.kind === "op" ? "" : (inf.params || 0).toLocaleString() + (frozen ? " (" + frozen.toLocaleString() + " frozen)" : inf.params ? " (all trainable)" : "")) +
      row("FLOPs (forward)", (inf.flops || 0).toLocaleString()) +
      row("FLOPs (training step)", D.has.train && inf.paths.length ? sums.train_flops.toLocaleString() : "") +
      row("holds in a training step", D.has.memory && inf.paths.length ? humanBytes(sums.holds) : "") +
      row("predicted time (" + esc(D.hw || "") + ")", D.has.time && inf.paths.length ? seconds(sums.seconds) : "") +
      row("receptive field", r && r.rf ? esc(r.rf) : "") +
      row("calls", r && r.calls > 1 ? r.calls : "") + "</table>";
    if (inf.kind === "group") html += "<p>" + inf.paths.length + " identical blocks in a row; click to open them.</p>";
    else if (inf.openable) html += "<p>Click to open it in place; click its frame's title to close it.</p>";
    var failedKey = D.failed ? (leaf[D.failed] ? drawnAs(leaf[D.failed]) : D.failed) : null;
    if (key === failedKey) html += '<p class="bad">' + esc(D.failure) + "</p>";
    details.innerHTML = html;
  }

  function select(key, fromDiagram) {
    selected = key;
    show(key);
    markSelected();
    root.querySelectorAll("#layers tr.selected").forEach(function (tr) { tr.classList.remove("selected"); });
    var inf = info(key);
    if (fromDiagram && inf.paths.length) {
      var tr = root.querySelector('#layers tr[data-path="' + cssEscape(inf.paths[0]) + '"]');
      if (tr) { revealRow(tr); tr.classList.add("selected"); tr.scrollIntoView({block: "nearest"}); }
    }
  }

  function markSelected() {
    canvas.querySelectorAll(".selected").forEach(function (el) { el.classList.remove("selected"); });
    if (selected !== null) { var el = nodeElement(selected); if (el) el.classList.add("selected"); }
  }

  function cssEscape(s) { return String(s).replace(/["\\]/g, "\\$&"); }

  function revealRow(tr) {
    var parent = tr.getAttribute("data-parent");
    while (parent) {
      var p = root.querySelector('#layers tr[data-id="' + cssEscape(parent) + '"]');
      if (!p) break;
      if (!p.classList.contains("open")) p.click();
      parent = p.getAttribute("data-parent");
    }
  }

  function keysForPath(path) {
    // The leaf node or call (its first call) that a table row's path names.
    var found = [];
    Object.keys(D.calls).forEach(function (c) { if (D.calls[c].path === path) found.push(c); });
    D.nodes.forEach(function (n) { if (n.kind === "module" && n.name === path) found.push(n.id); });
    return found;
  }

  function reveal(key) {
    // Open every call and run around ``key`` so that it is drawn itself.
    var chain = groups[key] ? callChain(groups[key].parent) : D.calls[key] ? callChain(D.calls[key].parent) : leaf[key].anc;
    chain.forEach(function (c) { opened.add(c); if (groupOf[c]) opened.add(groupOf[c]); });
    if (!groups[key] && groupOf[key]) opened.add(groupOf[key]);
  }

  function centerOn(key) {
    var at = screenOf(key);
    if (!at) return;
    var box = view.getBoundingClientRect();
    transform.x += box.left + box.width / 2 - at.x;
    transform.y += box.top + box.height / 2 - at.y;
    apply();
  }

  root.querySelectorAll("#layers tbody tr").forEach(function (tr) {
    tr.addEventListener("click", function () {
      var keys = keysForPath(tr.getAttribute("data-path"));
      if (!keys.length) return;
      root.querySelectorAll("#layers tr.selected").forEach(function (x) { x.classList.remove("selected"); });
      tr.classList.add("selected");
      reveal(keys[0]);
      render().then(function () { selected = keys[0]; show(keys[0]); markSelected(); centerOn(keys[0]); });
    });
  });

  // ------------------------------------------------------------------ search

  function runSearch(step) {
    var q = search.value.trim().toLowerCase();
    hits = [];
    if (q) {
      var exact = [], partial = [];
      Object.keys(D.calls).forEach(function (c) {
        var x = D.calls[c], name = x.path.toLowerCase();
        if (name === q || x.type.toLowerCase() === q) exact.push(c); else if (name.indexOf(q) >= 0 || x.type.toLowerCase().indexOf(q) >= 0) partial.push(c);
      });
      D.nodes.forEach(function (n) {
        if (n.kind !== "module" && n.kind !== "op") return;
        var name = n.name.toLowerCase(), type = n.type.toLowerCase();
        if (name === q || type === q) exact.push(n.id); else if (name.indexOf(q) >= 0 || type.indexOf(q) >= 0) partial.push(n.id);
      });
      hits = exact.concat(partial);
    }
    if (!hits.length) { hitIndex = -1; el("hits").textContent = q ? "no match" : ""; markHits(); return Promise.resolve(); }
    hitIndex = step ? (hitIndex + 1) % hits.length : 0;
    el("hits").textContent = (hitIndex + 1) + " of " + hits.length;
    var key = hits[hitIndex];
    reveal(key);
    return render().then(function () { selected = key; show(key); markSelected(); centerOn(key); });
  }

  function markHits() {
    canvas.querySelectorAll(".hit").forEach(function (el) { el.classList.remove("hit"); });
    hits.forEach(function (k) { var el = nodeElement(k); if (el) el.classList.add("hit"); });
  }

  var searchTimer = null;
  search.addEventListener("input", function () { clearTimeout(searchTimer); searchTimer = setTimeout(function () { runSearch(false); }, 150); });
  search.addEventListener("keydown", function (e) { if (e.key === "Enter") { clearTimeout(searchTimer); runSearch(hits.length > 0); } });

  // ------------------------------------------------------------------ pan and zoom

  var dragged = false, dragFrom = null;
  function apply() { canvas.style.transform = "translate(" + transform.x + "px," + transform.y + "px) scale(" + transform.k + ")"; }
  function fit() {
    var svg = canvas.querySelector("svg");
    if (!svg) return;
    var w = Number(svg.getAttribute("width")), h = Number(svg.getAttribute("height")), box = view.getBoundingClientRect();
    var k = Math.min(1.2, (box.width - 16) / w, (box.height - 16) / h);
    transform = {k: k, x: (box.width - w * k) / 2, y: Math.max(8, (box.height - h * k) / 2)};
    apply();
  }
  view.addEventListener("wheel", function (e) {
    e.preventDefault();
    var box = view.getBoundingClientRect(), px = e.clientX - box.left, py = e.clientY - box.top;
    var k = Math.max(0.05, Math.min(8, transform.k * Math.exp(-e.deltaY * 0.0015)));
    transform.x = px - (px - transform.x) * k / transform.k;
    transform.y = py - (py - transform.y) * k / transform.k;
    transform.k = k;
    apply();
  }, {passive: false});
  view.addEventListener("mousedown", function (e) { dragFrom = {x: e.clientX, y: e.clientY, tx: transform.x, ty: transform.y}; dragged = false; });
  window.addEventListener("mousemove", function (e) {
    if (!dragFrom) return;
    var dx = e.clientX - dragFrom.x, dy = e.clientY - dragFrom.y;
    if (Math.abs(dx) + Math.abs(dy) > 4) dragged = true;
    if (dragged) { transform.x = dragFrom.tx + dx; transform.y = dragFrom.ty + dy; apply(); view.classList.add("dragging"); }
  });
  window.addEventListener("mouseup", function () { dragFrom = null; view.classList.remove("dragging"); setTimeout(function () { dragged = false; }, 0); });

  el("fit").addEventListener("click", fit);
  el("zoom-in").addEventListener("click", function () { transform.k *= 1.25; apply(); });
  el("zoom-out").addEventListener("click", function () { transform.k /= 1.25; apply(); });
  el("fold-all").addEventListener("click", function () { opened.clear(); render(); });
  colorSelect.addEventListener("change", function () { render(selected || undefined); });
  sideBox.addEventListener("change", function () { render(); });

  // ------------------------------------------------------------------ start

  if (D.failed) reveal(D.failed);
  var started = performance.now();
  Viz.instance().then(function (instance) {
    viz = instance;
    return render();
  }).then(function () {
    state.firstPaintMs = performance.now() - started;  // from this script's start
    state.readyAt = performance.now();  // from the navigation's start: what a reader waits
    state.ready = true;
    var failedKey = D.failed ? (leaf[D.failed] ? drawnAs(leaf[D.failed]) : D.failed) : null;
    if (failedKey) { selected = failedKey; show(failedKey); markSelected(); }
  }).catch(function (error) {
    status.textContent = "the diagram could not be drawn: " + error;
    state.error = String(error);
  });
})();
