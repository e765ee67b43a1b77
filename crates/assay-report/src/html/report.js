// Assay HTML report. Reads the run from the JSON block and builds the charts,
// filters, episode list, trace viewer and diff. Run data is attacker-controlled
// text: it is only ever set through textContent or attributes, never parsed as markup.
"use strict";
(function () {
  var DATA = JSON.parse(document.getElementById("assay-data").textContent);
  var SVGNS = "http://www.w3.org/2000/svg";
  var PALETTE = ["#2f5bd3", "#c62828", "#1a7f37", "#b26a00", "#7a4dc2", "#00838f", "#ad1457", "#5d4037"];
  var OUTCOMES = { error: "error", inconclusive: "inconclusive", attack_success: "attack succeeded", violation: "violation" };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) e.setAttribute(k, String(attrs[k]));
    return e;
  }
  function pct(x) { return (x * 100).toFixed(1) + "%"; }
  function agentColor(agent) {
    var i = DATA.agents.indexOf(agent);
    if (i < 0) i = DATA.agents.length;
    return PALETTE[i % PALETTE.length];
  }

  // ---- filters -------------------------------------------------------------
  var summaryRows = Array.prototype.slice.call(document.querySelectorAll("#summary tbody tr"));
  var GROUPS = [
    { id: "spec", title: "Spec", of: function (e) { return [e.spec]; } },
    { id: "agent", title: "Agent", of: function (e) { return [e.agent]; } },
    { id: "threat", title: "Threat", of: function (e) { return [e.threat || "(benign)"]; } },
    { id: "technique", title: "Technique", of: function (e) { return [e.technique || "(none)"]; } },
    { id: "outcome", title: "Status", of: function (e) { return e.outcomes; } }
  ];
  var hidden = {};
  GROUPS.forEach(function (g) { hidden[g.id] = new Set(); });

  function values(g) {
    var seen = new Set();
    if (g.id === "spec" || g.id === "agent") {
      summaryRows.forEach(function (r) { seen.add(r.dataset[g.id]); });
    }
    if (g.id === "agent") DATA.agents.forEach(function (a) { seen.add(a); });
    if (g.id === "outcome") Object.keys(OUTCOMES).forEach(function (o) { seen.add(o); });
    DATA.episodes.forEach(function (e) { g.of(e).forEach(function (v) { seen.add(v); }); });
    return Array.from(seen).sort();
  }

  function visible(e) {
    return GROUPS.every(function (g) {
      var vs = g.of(e);
      if (g.id === "outcome") return vs.some(function (v) { return !hidden.outcome.has(v); });
      return vs.every(function (v) { return !hidden[g.id].has(v); });
    });
  }

  function buildFilters() {
    var box = document.getElementById("filters");
    GROUPS.forEach(function (g) {
      var fs = el("fieldset");
      fs.dataset.group = g.id;
      fs.appendChild(el("legend", null, g.title));
      values(g).forEach(function (v) {
        var label = el("label");
        var cb = el("input");
        cb.type = "checkbox";
        cb.checked = true;
        cb.dataset.group = g.id;
        cb.dataset.value = v;
        cb.addEventListener("change", function () {
          if (cb.checked) hidden[g.id].delete(v); else hidden[g.id].add(v);
          refresh();
        });
        label.appendChild(cb);
        label.appendChild(document.createTextNode(" " + (g.id === "outcome" ? OUTCOMES[v] || v : v)));
        fs.appendChild(label);
      });
      box.appendChild(fs);
    });
  }

  // ---- charts --------------------------------------------------------------
  var CHART_KEY = { technique: "technique", category: "threat" };

  function drawChart(chart) {
    var rows = chart.rows.filter(function (r) {
      if (hidden.agent.has(r.agent)) return false;
      var g = CHART_KEY[chart.id];
      if (g && hidden[g].has(r.key)) return false;
      return true;
    });
    var box = el("div", "chart");
    box.dataset.chart = chart.id;
    box.appendChild(el("h3", null, chart.title));
    if (!rows.length) {
      box.appendChild(el("p", "dim", "No scored attacked episodes."));
      return box;
    }
    var LABEL = 270, W = 250, RIGHT = 96, ROW = 24, TOP = 18;
    var H = TOP + rows.length * ROW + 6;
    var s = svg("svg", { width: LABEL + W + RIGHT, height: H, viewBox: "0 0 " + (LABEL + W + RIGHT) + " " + H, role: "img" });
    s.appendChild(svg("title", {})).textContent = chart.title + " (bars: rate; whiskers: 95% Wilson interval)";
    [0, 0.25, 0.5, 0.75, 1].forEach(function (t) {
      var x = LABEL + t * W;
      s.appendChild(svg("line", { "class": "grid", x1: x, x2: x, y1: TOP - 4, y2: H - 4 }));
      var tx = svg("text", { "class": "tick", x: x, y: 11, "text-anchor": "middle" });
      tx.textContent = Math.round(t * 100) + "%";
      s.appendChild(tx);
    });
    rows.forEach(function (r, i) {
      var y = TOP + i * ROW;
      var g = svg("g", { "class": "row" });
      g.dataset.key = r.key;
      g.dataset.agent = r.agent;
      var tip = svg("title", {});
      tip.textContent = r.key + " · " + r.agent + ": " + r.k + "/" + r.n + " = " + pct(r.rate) +
        " (95% CI " + pct(r.lo) + "–" + pct(r.hi) + ")";
      g.appendChild(tip);
      var label = svg("text", { "class": "label", x: LABEL - 8, y: y + 15, "text-anchor": "end" });
      var name = r.key + " · " + r.agent;
      label.textContent = name.length > 42 ? name.slice(0, 41) + "…" : name;
      g.appendChild(label);
      g.appendChild(svg("rect", { "class": "track", x: LABEL, y: y + 4, width: W, height: ROW - 8 }));
      g.appendChild(svg("rect", { "class": "bar", x: LABEL, y: y + 4, width: Math.max(r.rate * W, 0.5), height: ROW - 8, fill: agentColor(r.agent), "fill-opacity": 0.75 }));
      var cy = y + ROW / 2, x1 = LABEL + r.lo * W, x2 = LABEL + r.hi * W;
      var ci = svg("g", { "class": "ci" });
      ci.dataset.lo = r.lo;
      ci.dataset.hi = r.hi;
      ci.appendChild(svg("line", { x1: x1, x2: x2, y1: cy, y2: cy }));
      ci.appendChild(svg("line", { x1: x1, x2: x1, y1: cy - 5, y2: cy + 5 }));
      ci.appendChild(svg("line", { x1: x2, x2: x2, y1: cy - 5, y2: cy + 5 }));
      g.appendChild(ci);
      var v = svg("text", { "class": "value", x: LABEL + W + 6, y: y + 15 });
      v.textContent = r.k + "/" + r.n + "  " + pct(r.rate);
      g.appendChild(v);
      s.appendChild(g);
    });
    box.appendChild(s);
    return box;
  }

  function drawCharts() {
    var box = document.getElementById("charts");
    box.textContent = "";
    var legend = el("div", "legend");
    DATA.agents.forEach(function (a) {
      if (hidden.agent.has(a)) return;
      var sp = el("span");
      var sw = el("i");
      sw.style.background = agentColor(a);
      sp.appendChild(sw);
      sp.appendChild(document.createTextNode(a));
      legend.appendChild(sp);
    });
    box.appendChild(legend);
    DATA.charts.forEach(function (c) { box.appendChild(drawChart(c)); });
  }

  // ---- episode list and trace viewer ---------------------------------------
  var selected = null;

  function drawList() {
    var list = document.getElementById("episodes");
    list.textContent = "";
    var shown = 0;
    DATA.episodes.forEach(function (e, i) {
      if (!visible(e)) return;
      shown++;
      var li = el("li");
      li.dataset.index = i;
      li.dataset.episode = e.episode;
      if (selected === i) li.classList.add("selected");
      var head = el("div");
      head.appendChild(el("strong", null, e.agent));
      head.appendChild(document.createTextNode(" · " + e.spec + " · epoch " + e.epoch));
      li.appendChild(head);
      li.appendChild(el("div", "case", e.case));
      var tags = el("div");
      e.outcomes.forEach(function (o) { tags.appendChild(el("span", "tag " + o, OUTCOMES[o] || o)); });
      e.violations.forEach(function (v) { tags.appendChild(el("span", "tag", v.rule)); });
      li.appendChild(tags);
      li.tabIndex = 0;
      li.addEventListener("click", function () { show(i); });
      li.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); show(i); }
      });
      list.appendChild(li);
    });
    var n = DATA.notes;
    var note = "Showing " + shown + " of " + n.failing + " failing episode(s) (" + n.episodes_total +
      " in the run; " + n.passing_not_listed + " passing episode(s) are not listed and their traces are not embedded). " +
      "Traces are embedded for at most " + n.trace_cap + " failing episodes";
    note += n.traces_over_cap ? ": " + n.traces_over_cap + " failing episode(s) were left out." : ".";
    if (n.traces_missing) note += " " + n.traces_missing + " trace(s) could not be read.";
    if (n.text_cut) note += " Texts longer than " + n.text_cap + " characters are cut.";
    document.getElementById("episodes-note").textContent = note;
  }

  function citations(e) {
    var why = {};
    function add(seq, reason) { (why[seq] = why[seq] || []).push(reason); }
    e.violations.forEach(function (v) { v.events.forEach(function (s) { add(s, v.rule); }); });
    e.attack_events.forEach(function (s) { add(s, "attack success"); });
    e.unsupported.forEach(function (s) { add(s, "unsupported"); });
    return why;
  }

  function json(v) { return JSON.stringify(v); }

  function eventBody(ev) {
    var b = el("div");
    function pre(t) { b.appendChild(el("pre", null, t)); }
    function line(t) { b.appendChild(el("div", null, t)); }
    switch (ev.type) {
      case "episode_start":
        line("episode " + ev.episode + " · case " + ev.case + " · agent " + ev.agent + (ev.threat ? " · threat " + ev.threat : ""));
        (ev.payloads || []).forEach(function (p) { line("payload in slot " + p.slot + ":"); pre(p.text); });
        break;
      case "message": line(ev.role + ":"); pre(ev.content); break;
      case "tool_call": line(ev.tool + (ev.call_id ? "  (" + ev.call_id + ")" : "")); pre(json(ev.args)); break;
      case "tool_result": line((ev.ok ? "ok" : "failed") + " · result of #" + ev.call); pre(ev.output); break;
      case "effect":
        var f = Object.assign({}, ev.effect); var k = f.kind; delete f.kind;
        line(k + " · from #" + ev.call); pre(json(f)); break;
      case "injection_delivered": line("payload of " + ev.threat + " in slot " + ev.slot + " reached the agent via #" + ev.call); break;
      case "error": line(ev.source + ": "); pre(ev.message); break;
      case "log": line(ev.stream + ":"); pre(ev.text); break;
      case "limit": line(ev.limit + " = " + ev.value + (ev.detail ? " · " + ev.detail : "")); break;
      case "episode_end": line("ended: " + ev.reason); break;
      default: pre(json(ev));
    }
    return b;
  }

  function focusEvent(seq) {
    var row = document.getElementById("ev-" + seq);
    if (!row) return;
    document.querySelectorAll("#viewer .ev.focus").forEach(function (r) { r.classList.remove("focus"); });
    row.classList.add("focus");
    row.scrollIntoView({ block: "center" });
  }

  function citeLinks(parent, seqs) {
    seqs.forEach(function (s) {
      var b = el("button", "cite-link", "#" + s);
      b.type = "button";
      b.addEventListener("click", function () { focusEvent(s); });
      parent.appendChild(b);
    });
  }

  function show(i) {
    selected = i;
    document.querySelectorAll("#episodes li").forEach(function (li) {
      li.classList.toggle("selected", Number(li.dataset.index) === i);
    });
    var e = DATA.episodes[i];
    var v = document.getElementById("viewer");
    v.textContent = "";
    v.dataset.episode = e.episode;
    v.appendChild(el("h3", null, e.episode));
    v.appendChild(el("div", "dim", e.spec + " · " + e.case + " · " + e.agent + " (" + e.role + ") · epoch " + e.epoch));
    var verdict = "status " + e.status + " · utility " + e.utility.toFixed(2);
    if (e.attack_success === true) verdict += " · attack succeeded";
    if (e.attack_success === false) verdict += " · attack failed";
    v.appendChild(el("div", null, verdict));
    if (e.error) v.appendChild(el("pre", "fail", "error: " + e.error));
    if (e.limit) v.appendChild(el("div", "fail", "limit: " + e.limit));
    var ul = el("ul");
    e.violations.forEach(function (x) {
      var li = el("li");
      li.appendChild(el("strong", null, x.rule));
      li.appendChild(document.createTextNode(": " + x.explanation + " "));
      citeLinks(li, x.events);
      ul.appendChild(li);
    });
    if (e.attack_events.length) {
      var li = el("li");
      li.appendChild(el("strong", null, "attack success"));
      li.appendChild(document.createTextNode(" proven by "));
      citeLinks(li, e.attack_events);
      ul.appendChild(li);
    }
    if (e.unsupported.length) {
      var lu = el("li");
      lu.appendChild(el("strong", null, "unsupported"));
      lu.appendChild(document.createTextNode(" effects the world could not model: "));
      citeLinks(lu, e.unsupported);
      ul.appendChild(lu);
    }
    if (ul.childNodes.length) v.appendChild(ul);
    if (e.trace === null) {
      v.appendChild(el("p", "dim", e.trace_note || "trace not embedded"));
      return;
    }
    var why = citations(e);
    var trace = el("div", "trace");
    var first = null;
    DATA.traces[e.trace].forEach(function (ev) {
      var row = el("div", "ev k-" + ev.type);
      row.id = "ev-" + ev.seq;
      row.dataset.seq = ev.seq;
      row.appendChild(el("div", "seq", "#" + ev.seq));
      var kind = el("div", "kind", ev.type.replace(/_/g, " "));
      if (why[ev.seq]) {
        row.classList.add("cited");
        kind.appendChild(el("div", "why", "cited: " + why[ev.seq].join(", ")));
        if (first === null) first = ev.seq;
      }
      row.appendChild(kind);
      row.appendChild(eventBody(ev));
      trace.appendChild(row);
    });
    v.appendChild(trace);
    if (first !== null) focusEvent(first);
  }

  // ---- diff ----------------------------------------------------------------
  function drawDiff() {
    if (!DATA.diff) return;
    document.getElementById("diff-section").hidden = false;
    var box = document.getElementById("diff");
    var b = DATA.diff.base;
    box.appendChild(el("p", "dim", "Base run: seed " + b.seed + ", " + b.episodes + " episode(s)" +
      (b.digest ? ", digest " + b.digest : "") + "; " + b.matched + " episode(s) matched by spec, case, agent and epoch, " +
      b.unchanged + " unchanged. Regressions include a pass that became a failure and a new rule firing."));
    var index = {};
    DATA.episodes.forEach(function (e, i) { index[e.episode] = i; });
    [["regressions", "Regressions: newly failing or worse"], ["improvements", "Improvements: newly passing or better"],
     ["only_in_run", "Only in this run"], ["only_in_base", "Only in the base run"]].forEach(function (p) {
      var items = DATA.diff.lists[p[0]];
      var h = el("h3", null, p[1] + " (" + items.length + ")");
      box.appendChild(h);
      if (!items.length) return;
      var ul = el("ul");
      ul.dataset.list = p[0];
      items.forEach(function (d) {
        var li = el("li", null, d.spec + " · " + d.case + " · " + d.agent + " · epoch " + d.epoch + ": " +
          (d.before || "absent") + " → " + (d.after || "absent") + (d.why.length ? " (" + d.why.join("; ") + ")" : ""));
        if (d.episode && index[d.episode] !== undefined) {
          li.classList.add("link");
          li.addEventListener("click", function () { show(index[d.episode]); });
        }
        ul.appendChild(li);
      });
      box.appendChild(ul);
    });
  }

  function refresh() {
    summaryRows.forEach(function (r) {
      r.hidden = hidden.spec.has(r.dataset.spec) || hidden.agent.has(r.dataset.agent);
    });
    drawCharts();
    drawList();
  }

  buildFilters();
  drawDiff();
  refresh();
})();
