/* A guided view's step (issue 19): viewer.js shows the waypoint's image with its channels
   and viewport; this draws the waypoint's annotation, if it has one, as an outline over the
   image (level-0 pixels, redrawn on every viewport change). */
(function () {
  "use strict";
  var el = document.getElementById("viewer");
  var data = document.getElementById("guide-shape");
  if (!el || !data) { return; }
  var shape = JSON.parse(data.textContent);
  if (!shape) { return; }
  var svgNS = "http://www.w3.org/2000/svg";
  var svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("class", "annotations");
  svg.setAttribute("aria-label", "Annotation" + (shape["class"] ? ": " + shape["class"] : ""));
  el.appendChild(svg);

  function redraw() {
    var v = window.plexhubViewer;
    if (!v || v.world.getItemCount() === 0) { return; }
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    var g = shape.geometry;
    var pts = (g.type === "Point" ? [g.coordinates] : g.coordinates[0]).map(function (p) {
      return v.viewport.imageToViewerElementCoordinates(new OpenSeadragon.Point(p[0], p[1]));
    });
    var node;
    if (g.type === "Point") {
      node = document.createElementNS(svgNS, "circle");
      node.setAttribute("cx", pts[0].x.toFixed(1));
      node.setAttribute("cy", pts[0].y.toFixed(1));
      node.setAttribute("r", "8");
    } else {
      node = document.createElementNS(svgNS, "polygon");
      node.setAttribute("points", pts.map(function (q) {
        return q.x.toFixed(1) + "," + q.y.toFixed(1);
      }).join(" "));
    }
    node.setAttribute("class", "saved");
    svg.appendChild(node);
  }

  function attach() {
    var v = window.plexhubViewer;
    if (!v) { window.setTimeout(attach, 50); return; }
    v.addHandler("update-viewport", redraw);
    v.addHandler("open", redraw);
    redraw();
  }
  attach();
}());
