// Draws the heatmap, the graph and the explanations from the JSON in #data. Text is only ever
// set with textContent: names from manifests are never parsed as markup.
"use strict";
(function () {
  var data = JSON.parse(document.getElementById("data").textContent);
  var groups = data.groups, cells = data.cells, n = groups.length;
  var SVG = "http://www.w3.org/2000/svg";

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function pct(c) {
    return c.total ? Math.round((1000 * c.allowed) / c.total) / 10 + " %" : "-";
  }
  function quote(s) {
    return /^[A-Za-z0-9._\/:-]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\\''") + "'";
  }

  var selected = null;
  function show(r, c) {
    var cell = cells[r] && cells[r][c];
    if (!cell) return;
    if (selected) selected.classList.remove("sel");
    selected = document.getElementById("cell-" + r + "-" + c);
    if (selected) selected.classList.add("sel");
    var box = document.getElementById("explain");
    box.textContent = "";
    box.appendChild(el("h3", null, groups[r].label + " \u2192 " + groups[c].label));
    box.appendChild(el("p", "verdict " + cell.state,
      cell.state + ": " + cell.allowed + " of " + cell.total + " (pod pair, probe) allowed (" + pct(cell) + ")"));
    var x = cell.explanation === null ? null : data.explanations[cell.explanation];
    if (!x) {
      box.appendChild(el("p", "help", "No pod pair to explain (a single pod with itself)."));
      return;
    }
    box.appendChild(el("p", "help", "A representative flow" +
      (cell.state === "partial" ? " (a denied one)" : "") + ": " + x.from + " \u2192 " + x.to + " " + x.probe));
    var cmd = "palisade explain " + (data.source ? data.source + " " : "") + "--from " + quote(x.from) +
      " --to " + quote(x.to) + " --port " + x.probe;
    if (x.text !== null) box.appendChild(el("pre", "text", x.text));
    else box.appendChild(el("p", "help", "Not embedded (the page's budget for explanations is spent): run"));
    box.appendChild(el("div", "cmd", cmd));
    findingsOn(box, r, c);
  }

  // The lint findings whose object concerns pods of group r or c, linked to their table rows.
  function findingsOn(box, r, c) {
    var rows = document.querySelectorAll("#lint tr[id^='finding-']"), list = el("ul", "onfindings");
    data.finding_groups.forEach(function (gs, k) {
      if (gs.indexOf(r) < 0 && gs.indexOf(c) < 0) return;
      var tr = document.getElementById("finding-" + k);
      if (!tr) return;
      var a = el("a", null, tr.cells[0].textContent + " " + tr.cells[1].textContent + ": " + tr.cells[2].textContent);
      a.href = "#finding-" + k;
      var li = el("li");
      li.appendChild(a);
      list.appendChild(li);
    });
    if (!list.firstChild) return;
    box.appendChild(el("h4", null, "Lint findings on these pods"));
    box.appendChild(list);
  }

  // Marks group g's row and column in the heatmap (a finding's "pods in" link).
  var marked = [];
  function mark(g) {
    marked.forEach(function (e) { e.classList.remove("hl"); });
    marked = [];
    for (var i = 0; i < n; i++) {
      [document.getElementById("cell-" + g + "-" + i), document.getElementById("cell-" + i + "-" + g)]
        .forEach(function (e) { if (e) { e.classList.add("hl"); marked.push(e); } });
    }
    var first = document.getElementById("cell-" + g + "-0");
    if (first) first.scrollIntoView({ block: "center", inline: "nearest" });
  }

  function heatmap() {
    var t = el("table", "heat"), head = el("tr");
    head.appendChild(el("th"));
    groups.forEach(function (g) {
      var th = el("th", "col");
      th.appendChild(el("div", null, g.label));
      th.title = g.label + " (" + g.pods + " pods)";
      head.appendChild(th);
    });
    t.appendChild(head);
    for (var r = 0; r < n; r++) {
      var tr = el("tr"), th = el("th", "row", groups[r].label);
      th.title = groups[r].kind + " " + groups[r].label + ", " + groups[r].pods + " pods: " +
        groups[r].sample.join(", ") + (groups[r].sample.length < groups[r].pods ? ", \u2026" : "");
      tr.appendChild(th);
      for (var c = 0; c < n; c++) {
        var cell = cells[r][c], td = el("td", cell.state);
        td.id = "cell-" + r + "-" + c;
        td.dataset.r = r;
        td.dataset.c = c;
        td.title = groups[r].label + " \u2192 " + groups[c].label + ": " + cell.state + " (" + pct(cell) + ")";
        tr.appendChild(td);
      }
      t.appendChild(tr);
    }
    t.addEventListener("click", function (ev) {
      var td = ev.target.closest("td");
      if (td) location.hash = "cell=" + td.dataset.r + "," + td.dataset.c;
    });
    document.getElementById("heatmap").appendChild(t);
  }

  function graph() {
    var radius = n > 1 ? Math.max(120, n * 5) : 0, size = 2 * radius + 360, mid = size / 2;
    var box = svg("svg", { viewBox: "0 0 " + size + " " + size, role: "img" });
    var pos = groups.map(function (g, i) {
      var a = (2 * Math.PI * i) / Math.max(n, 1) - Math.PI / 2;
      return { x: mid + radius * Math.cos(a), y: mid + radius * Math.sin(a), a: a };
    });
    var hue = {}, hues = 0;
    groups.forEach(function (g) { if (!(g.namespace in hue)) hue[g.namespace] = (210 + hues++ * 137) % 360; });
    // Whichever is rarer is drawn: where traffic flows in a mostly closed cluster, where it is
    // (partly) blocked in a mostly open one.
    var open = 0, pairs = 0;
    for (var r = 0; r < n; r++)
      for (var c = 0; c < n; c++)
        if (r !== c && cells[r][c].state !== "empty") { pairs++; if (cells[r][c].state !== "denied") open++; }
    var drawBlocked = open > pairs / 2;
    document.getElementById("graphhelp").textContent = drawBlocked
      ? "Mostly open: an edge where connections between two different groups are denied (red) or partly denied (amber). Hover a node for its edges."
      : "Mostly closed: an edge where connections between two different groups are allowed (green) or partly allowed (amber). Hover a node for its edges.";
    var edges = [];
    for (r = 0; r < n; r++)
      for (c = 0; c < n; c++) {
        var s = cells[r][c].state;
        if (r === c || s === "empty" || (drawBlocked ? s === "allowed" : s === "denied")) continue;
        var line = svg("line", { x1: pos[r].x, y1: pos[r].y, x2: pos[c].x, y2: pos[c].y,
          stroke: s === "partial" ? "#f0ad4e" : s === "allowed" ? "#3fae6a" : "#d9534f" });
        line.dataset.a = r;
        line.dataset.b = c;
        edges.push(line);
        box.appendChild(line);
      }
    // Few edges are drawn plainly; many faintly, until a node is hovered.
    if (edges.length <= 60) edges.forEach(function (e) { e.setAttribute("stroke-opacity", 0.8); });
    groups.forEach(function (g, i) {
      var p = pos[i], node = svg("g", {});
      var circle = svg("circle", { cx: p.x, cy: p.y, r: 6, fill: "hsl(" + hue[g.namespace] + ",50%,42%)" });
      // Labels point outwards along the radius (read left to right on either side), so that
      // neighbours do not overlap.
      var left = Math.cos(p.a) < 0, deg = (p.a * 180) / Math.PI + (left ? 180 : 0);
      var label = svg("text", { x: p.x + (left ? -10 : 10), y: p.y + 3, "text-anchor": left ? "end" : "start",
        transform: "rotate(" + deg.toFixed(1) + " " + p.x.toFixed(1) + " " + p.y.toFixed(1) + ")" });
      label.textContent = g.label.length > 28 ? g.label.slice(0, 27) + "\u2026" : g.label;
      var tip = svg("title", {});
      tip.textContent = g.kind + " " + g.label + " (" + g.pods + " pods)";
      node.appendChild(tip);
      node.appendChild(circle);
      node.appendChild(label);
      node.addEventListener("mouseenter", function () {
        edges.forEach(function (e) { e.classList.toggle("hi", e.dataset.a == i || e.dataset.b == i); });
      });
      node.addEventListener("mouseleave", function () {
        edges.forEach(function (e) { e.classList.remove("hi"); });
      });
      box.appendChild(node);
    });
    document.getElementById("graphbox").appendChild(box);
  }

  // #cell=R,C shows a cell (a link to it); #click=R,C clicks it, as a user would (for tests);
  // #row=G marks a group's row and column.
  function fromHash() {
    var g = /^#row=(\d+)$/.exec(location.hash);
    if (g) return mark(+g[1]);
    var m = /^#(cell|click)=(\d+),(\d+)$/.exec(location.hash);
    if (!m) return;
    if (m[1] === "cell") show(+m[2], +m[3]);
    else document.getElementById("cell-" + m[2] + "-" + m[3]).click();
  }

  heatmap();
  graph();
  window.addEventListener("hashchange", fromHash);
  fromHash();
  document.body.setAttribute("data-ready", "1");
})();
