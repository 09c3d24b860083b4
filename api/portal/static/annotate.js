/* Staff's review tools on the viewer page (issue 19): draw annotations (point, rectangle,
   polygon, freehand) over the image and record findings for the slide.

   Shapes are kept in level-0 image pixels and drawn as an SVG over OpenSeadragon's canvas,
   redrawn on every viewport change. Drawing: choose a tool, click on the image (a
   rectangle: two corners; a polygon: its vertices, then "Finish" or Enter; freehand: press
   and drag around the region, the outline closes on release and is kept as a Polygon with
   properties.shape "freehand", one vertex per FREEHAND_STEP screen pixels), give a class
   and a note, "Save annotation": POST /api/v1/images/{id}/annotations as a GeoJSON
   FeatureCollection. Findings: organ and term from the vocabulary
   (GET /api/v1/findings/vocabulary), severity, distribution, text and linked annotations,
   POST /api/v1/images/{id}/findings. Writes send the page's CSRF token. */
(function () {
  "use strict";
  var panel = document.getElementById("review");
  var el = document.getElementById("viewer");
  if (!panel || !el) { return; }
  var api = panel.dataset.api;
  var svgNS = "http://www.w3.org/2000/svg";
  var tool = "";
  var draft = [];
  var saved = [];
  var status = document.getElementById("review-status");
  var FREEHAND_STEP = 3;  // screen pixels between two vertices of a freehand outline
  var stroke = null;  // the screen position of the freehand outline's last vertex

  function say(text, bad) {
    if (status) { status.textContent = text; status.classList.toggle("error", !!bad); }
  }

  function call(method, path, body) {
    return window.plexhubRequest(method, api + path, body);
  }

  function viewer() { return window.plexhubViewer; }

  // ------------------------------------------------------------ the overlay
  var svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("class", "annotations");
  svg.setAttribute("aria-label", "Annotations");
  el.appendChild(svg);

  function toScreen(p) {
    var v = viewer();
    var q = v.viewport.imageToViewerElementCoordinates(new OpenSeadragon.Point(p[0], p[1]));
    return q.x.toFixed(1) + "," + q.y.toFixed(1);
  }

  function shape(points, kind, cls) {
    if (kind === "point") {
      var c = document.createElementNS(svgNS, "circle");
      var xy = toScreen(points[0]).split(",");
      c.setAttribute("cx", xy[0]); c.setAttribute("cy", xy[1]); c.setAttribute("r", "5");
      c.setAttribute("class", cls);
      return c;
    }
    var poly = document.createElementNS(svgNS, points.length > 2 || kind !== "draft" ?
      "polygon" : "polyline");
    poly.setAttribute("points", points.map(toScreen).join(" "));
    poly.setAttribute("class", cls);
    return poly;
  }

  function redraw() {
    if (!viewer() || viewer().world.getItemCount() === 0) { return; }
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    saved.forEach(function (f) {
      var g = f.geometry;
      var pts = g.type === "Point" ? [g.coordinates] : g.coordinates[0];
      svg.appendChild(shape(pts, g.type === "Point" ? "point" : "polygon", "saved"));
    });
    if (draft.length) {
      svg.appendChild(shape(draft, tool === "point" ? "point" : "draft", "draft"));
    }
  }

  function geometry() {
    if (tool === "point" && draft.length === 1) {
      return { type: "Point", coordinates: draft[0] };
    }
    var ring = draft;
    if (tool === "rectangle" && draft.length === 2) {
      var a = draft[0], b = draft[1];
      ring = [[a[0], a[1]], [b[0], a[1]], [b[0], b[1]], [a[0], b[1]]];
    }
    if (ring.length < 3) { return null; }
    return { type: "Polygon", coordinates: [ring.concat([ring[0]])] };
  }

  function setTool(name) {
    tool = tool === name ? "" : name;
    draft = [];
    panel.querySelectorAll("[data-tool]").forEach(function (b) {
      b.setAttribute("aria-pressed", b.dataset.tool === tool ? "true" : "false");
    });
    el.classList.toggle("drawing", !!tool);
    say(!tool ? "" : tool === "freehand" ? "Press and drag around the region" :
      "Click on the image" + (tool === "polygon" ? ", then Finish" : ""));
    redraw();
  }

  function addFreehand(v, position) {
    var p = v.viewport.viewerElementToImageCoordinates(position);
    var size = v.world.getItemAt(0).getContentSize();  // kept inside the image
    var q = [Math.min(size.x, Math.max(0, Math.round(p.x))),
      Math.min(size.y, Math.max(0, Math.round(p.y)))];
    var last = draft[draft.length - 1];
    if (!last || last[0] !== q[0] || last[1] !== q[1]) { draft.push(q); }
    redraw();
  }

  function attach() {
    var v = viewer();
    if (!v) { window.setTimeout(attach, 50); return; }
    v.addHandler("update-viewport", redraw);
    v.addHandler("canvas-click", function (ev) {
      if (tool === "freehand") { ev.preventDefaultAction = true; return; }
      if (!tool || !ev.quick) { return; }
      ev.preventDefaultAction = true;
      var p = v.viewport.viewerElementToImageCoordinates(ev.position);
      draft.push([Math.round(p.x), Math.round(p.y)]);
      if ((tool === "point" && draft.length > 1) || (tool === "rectangle" && draft.length > 2)) {
        draft = [draft[draft.length - 1]];
      }
      var ready = geometry() !== null && tool !== "polygon";
      say(ready ? "Shape ready: give it a class and save" :
        draft.length + " point" + (draft.length > 1 ? "s" : ""));
      redraw();
    });
    v.addHandler("canvas-drag", function (ev) {
      if (!tool) { return; }
      ev.preventDefaultAction = true;
      if (tool !== "freehand" || stroke === null) { return; }
      if (stroke.distanceTo(ev.position) < FREEHAND_STEP) { return; }
      stroke = ev.position;
      addFreehand(v, ev.position);
    });
    v.addHandler("canvas-press", function (ev) {
      if (tool !== "freehand") { return; }
      draft = [];
      stroke = ev.position;
      addFreehand(v, ev.position);
    });
    v.addHandler("canvas-release", function () {
      if (tool !== "freehand" || stroke === null) { return; }
      stroke = null;
      say(geometry() ? "Shape ready: give it a class and save" : "Draw a larger outline",
        !geometry());
      redraw();
    });
    load();
  }

  // ------------------------------------------------------------ annotations
  var list = document.getElementById("annotation-list");
  var links = document.getElementById("finding-annotations");

  function showAnnotations() {
    list.textContent = "";
    links.textContent = "";
    saved.forEach(function (f, i) {
      var p = f.properties;
      var li = document.createElement("li");
      li.textContent = p.shape + (p["class"] ? " · " + p["class"] : "") +
        (p.note ? " · " + p.note : "");
      li.dataset.annotation = f.id;
      list.appendChild(li);
      var label = document.createElement("label");
      var box = document.createElement("input");
      box.type = "checkbox"; box.value = f.id;
      label.appendChild(box);
      label.appendChild(document.createTextNode(" " + (i + 1) + ". " + p.shape +
        (p["class"] ? " · " + p["class"] : "")));
      links.appendChild(label);
    });
    redraw();
  }

  function load() {
    call("GET", "/annotations").then(function (fc) {
      saved = fc.features; showAnnotations();
    }).catch(function (e) { say("Annotations could not be loaded: " + e.message, true); });
    call("GET", "/findings").then(showFindings)
      .catch(function (e) { say("Findings could not be loaded: " + e.message, true); });
  }

  function saveAnnotation() {
    var g = geometry();
    if (!g) { say("Draw a shape first", true); return; }
    var props = { "class": document.getElementById("annotation-class").value.trim(),
      note: document.getElementById("annotation-note").value.trim() };
    if (tool === "rectangle" || tool === "freehand") { props.shape = tool; }
    var reason = document.getElementById("review-reason").value.trim();
    call("POST", "/annotations", { type: "FeatureCollection", reason: reason,
      features: [{ type: "Feature", geometry: g, properties: props }] })
      .then(function () { setTool(""); say("Annotation saved"); load(); })
      .catch(function (e) { say("Not saved: " + e.message, true); });
  }

  // ------------------------------------------------------------ findings
  var vocab = null;
  var organ = document.getElementById("finding-tissue");
  var term = document.getElementById("finding-term");
  var dist = document.getElementById("finding-distribution");
  var sev = document.getElementById("finding-severity");

  function option(select, value, text) {
    var o = document.createElement("option");
    o.value = value; o.textContent = text;
    select.appendChild(o);
  }

  function fillTerms() {
    term.textContent = "";
    (vocab.organs[organ.value] || []).forEach(function (t) { option(term, t, t); });
  }

  fetch(api.replace(/images\/[^/]+$/, "findings/vocabulary"), { credentials: "same-origin" })
    .then(function (r) { return r.json(); })
    .then(function (v) {
      vocab = v;
      Object.keys(v.organs).forEach(function (o) { option(organ, o, o); });
      if (panel.dataset.tissue && v.organs[panel.dataset.tissue]) {
        organ.value = panel.dataset.tissue;
      }
      Object.keys(v.severity).forEach(function (k) {
        option(sev, k, k + " · " + v.severity[k]);
      });
      option(dist, "", "—");
      v.distribution.forEach(function (d) { option(dist, d, d); });
      fillTerms();
    });
  organ.addEventListener("change", fillTerms);

  var findings = document.getElementById("finding-list");
  function showFindings(rows) {
    findings.textContent = "";
    rows.forEach(function (f) {
      var li = document.createElement("li");
      li.dataset.finding = f.id;
      li.textContent = f.tissue + ": " + f.term + ", grade " + f.severity +
        (f.distribution ? ", " + f.distribution : "") + (f.text ? " · " + f.text : "") +
        (f.annotations.length ? " · " + f.annotations.length + " annotation(s)" : "") +
        " · " + f.state;
      findings.appendChild(li);
    });
  }

  function saveFinding() {
    var linked = Array.prototype.map.call(
      links.querySelectorAll("input:checked"), function (b) { return b.value; });
    call("POST", "/findings", { tissue: organ.value, term: term.value,
      severity: parseInt(sev.value, 10), distribution: dist.value,
      text: document.getElementById("finding-text").value.trim(), annotations: linked,
      reason: document.getElementById("review-reason").value.trim() })
      .then(function () { say("Finding recorded"); return call("GET", "/findings"); })
      .then(showFindings)
      .catch(function (e) { say("Not recorded: " + e.message, true); });
  }

  panel.querySelectorAll("[data-tool]").forEach(function (b) {
    b.addEventListener("click", function () { setTool(b.dataset.tool); });
  });
  document.getElementById("finish-shape").addEventListener("click", function () {
    say(geometry() ? "Shape ready: give it a class and save" : "A polygon needs 3 points");
    redraw();
  });
  document.getElementById("save-annotation").addEventListener("click", saveAnnotation);
  document.getElementById("save-finding").addEventListener("click", saveFinding);
  attach();
}());
