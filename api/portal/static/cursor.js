/* Values under the cursor, for staff (issue 19): each channel's raw value at the level-0
   pixel under the mouse, from GET /api/v1/images/{id}/values?x=&y= (which reads a small
   window of the store). One request at a time: while one is out, only the newest position
   waits; the box shows "x, y" and the values by channel. */
(function () {
  "use strict";
  var box = document.getElementById("cursor-values");
  var el = document.getElementById("viewer");
  if (!box || !el) { return; }
  var api = box.dataset.api;
  var busy = false;
  var wanted = null;
  var shown = "";
  var state = { last: null, requests: 0 };
  window.plexhubCursor = state;  // for tests

  function viewer() { return window.plexhubViewer; }

  function fmt(v) {
    if (typeof v !== "number") { return String(v); }
    return Number.isInteger(v) ? String(v) : v.toPrecision(4);
  }

  function show(doc) {
    state.last = doc;
    box.textContent = "";
    var head = document.createElement("div");
    head.className = "where";
    head.textContent = "x " + doc.x + ", y " + doc.y;
    box.appendChild(head);
    doc.channels.forEach(function (c) {
      var row = document.createElement("div");
      row.dataset.channel = String(c.index);
      row.textContent = (c.marker || c.label) + " " + fmt(c.value);
      box.appendChild(row);
    });
    box.hidden = false;
  }

  function ask() {
    if (busy || !wanted) { return; }
    var p = wanted;
    wanted = null;
    var key = p.x + "," + p.y;
    if (key === shown) { return; }
    busy = true;
    state.requests += 1;
    fetch(api + "?x=" + p.x + "&y=" + p.y, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (doc) { if (doc) { shown = key; show(doc); } })
      .catch(function () { /* the next move asks again */ })
      .then(function () { busy = false; ask(); });
  }

  el.addEventListener("mousemove", function (ev) {
    var v = viewer();
    if (!v || v.world.getItemCount() === 0) { return; }
    var rect = el.getBoundingClientRect();
    var p = v.viewport.viewerElementToImageCoordinates(
      new OpenSeadragon.Point(ev.clientX - rect.left, ev.clientY - rect.top));
    var x = Math.floor(p.x), y = Math.floor(p.y);
    var size = v.world.getItemAt(0).getContentSize();
    if (x < 0 || y < 0 || x >= size.x || y >= size.y) { box.hidden = true; return; }
    wanted = { x: x, y: y };
    ask();
  });
  el.addEventListener("mouseleave", function () { wanted = null; box.hidden = true; });
}());
