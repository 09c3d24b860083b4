/* Two slides side by side (issue 19), e.g. vehicle vs high dose: one OpenSeadragon viewer
   per slide on the tile route with the slide's default preset, their pan and zoom kept in
   step (OpenSeadragon's viewport coordinates: the image's width is 1, so slides of one
   size line up pixel for pixel). "keep in step" off lets each move alone. */
(function () {
  "use strict";
  var grid = document.getElementById("compare");
  var data = document.getElementById("compare-sides");
  if (!grid || !data || typeof OpenSeadragon !== "function") { return; }
  var sides = JSON.parse(data.textContent);
  var sync = document.getElementById("sync");
  var state = { opened: 0, synced: 0, viewers: [] };
  window.plexhubCompare = state;  // for tests

  function tileSource(g) {
    var base = grid.dataset.api + g.id + "/tiles/";
    var query = g.preset ? "&preset=" + encodeURIComponent(g.preset) : "";
    return {
      width: g.width, height: g.height, tileSize: g.tile, tileOverlap: 0,
      minLevel: Math.max(0, g.top - (g.levels - 1)), maxLevel: g.top,
      getTileUrl: function (level, x, y) {
        return base + (g.top - level) + "/" + y + "/" + x + ".jpg?size=" + g.tile + query;
      }
    };
  }

  var viewers = sides.map(function (g, i) {
    var v = OpenSeadragon({
      element: document.getElementById("viewer-" + i),
      prefixUrl: grid.dataset.prefix,
      tileSources: tileSource(g),
      drawer: "canvas",  // see viewer.js: software WebGL stalls GPU-less machines
      immediateRender: false, maxTilesPerFrame: 16, imageLoaderLimit: 8,
      animationTime: 0.4, springStiffness: 12, blendTime: 0,
      showNavigator: false, showFullPageControl: false, maxZoomPixelRatio: 4,
      visibilityRatio: 0.5,
      gestureSettingsMouse: { clickToZoom: false, flickEnabled: false }
    });
    v.addOnceHandler("open", function () { state.opened += 1; });
    return v;
  });
  state.viewers = viewers;

  // OpenSeadragon raises "zoom" and "pan" as a move starts, with its target: the other
  // viewer animates to the same target (its own events are ignored while it follows)
  // (a zoom about the mouse moves the centre during the animation: when the leader's
  // animation ends, the other takes its final place at once)
  var leading = null, last = null;
  viewers.forEach(function (v, i) {
    var other = viewers[1 - i];
    function follow(now) {
      if (!sync.checked || leading !== null) { return; }
      leading = v; last = v;
      other.viewport.zoomTo(v.viewport.getZoom(now), null, now);
      other.viewport.panTo(v.viewport.getCenter(now), now);
      leading = null;
    }
    v.addHandler("zoom", function () { follow(false); });
    v.addHandler("pan", function () { follow(false); });
    v.addHandler("animation-finish", function () {
      if (last === v) { follow(true); state.synced += 1; }
    });
  });
}());
