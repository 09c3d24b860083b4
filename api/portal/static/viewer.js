/* The portal's image viewer: OpenSeadragon (bundled, see vendor/) on the API's DeepZoom
   endpoint, a rendering-preset picker, and n / p (or PageDown / PageUp) for the next and
   previous image of the study. All URLs come from data- attributes the server filled in,
   so the page works under any mount prefix; the session cookie authenticates (same
   origin). Requests carry X-Plexhub-CSRF from the page's csrf-token meta tag: the API
   refuses a write that the cookie alone authenticates (plexhub.api.csrf). A share URL (the notebook viewer's share_url()) adds
   ?preset=<id>@<version>&x=&y=&zoom= : that preset version, centred on level-0 pixel (x, y)
   at zoom screen pixels per image pixel. */
(function () {
  "use strict";
  var el = document.getElementById("viewer");
  if (!el || typeof OpenSeadragon !== "function") { return; }
  var dzi = el.dataset.dzi;
  var params = new URLSearchParams(window.location.search);
  var shared = params.get("preset") || "";
  var sx = parseFloat(params.get("x")), sy = parseFloat(params.get("y"));
  var sz = parseFloat(params.get("zoom"));
  var viewer = OpenSeadragon({
    element: el,
    prefixUrl: el.dataset.prefix,
    tileSources: shared ? dzi + "?preset=" + encodeURIComponent(shared) : dzi,
    showNavigator: true,
    maxZoomPixelRatio: 4,
    visibilityRatio: 0.5,
    gestureSettingsMouse: { clickToZoom: false }
  });
  window.plexhubViewer = viewer;  // for tests and the browser console
  if (isFinite(sx) && isFinite(sy) && isFinite(sz) && sz > 0) {
    viewer.addOnceHandler("open", function () {
      var vp = viewer.viewport;
      vp.zoomTo(vp.imageToViewportZoom(sz), null, true);
      vp.panTo(vp.imageToViewportCoordinates(sx, sy), true);
    });
  }

  function openWith(ref) {
    var center = null, zoom = null;
    if (viewer.world.getItemCount() > 0) {
      center = viewer.viewport.getCenter();
      zoom = viewer.viewport.getZoom();
    }
    viewer.addOnceHandler("open", function () {
      if (center !== null) {
        viewer.viewport.zoomTo(zoom, null, true);
        viewer.viewport.panTo(center, true);
      }
    });
    viewer.open(ref ? dzi + "?preset=" + encodeURIComponent(ref) : dzi);
  }

  function apiHeaders() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? { "X-Plexhub-CSRF": meta.content } : {};
  }

  var picker = document.getElementById("preset");
  if (picker) {
    fetch(el.dataset.presets, { credentials: "same-origin", headers: apiHeaders() })
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (presets) {
        presets.forEach(function (p) {
          var option = document.createElement("option");
          option.value = p.id + "@" + p.latest_version;
          option.textContent = p.name + " (" + p.scope + ", v" + p.latest_version + ")";
          picker.appendChild(option);
        });
        if (shared) {
          if (!Array.prototype.some.call(picker.options, function (o) {
            return o.value === shared; })) {
            var pinned = document.createElement("option");
            pinned.value = shared;
            pinned.textContent = "shared: " + shared;
            picker.appendChild(pinned);
          }
          picker.value = shared;
        }
        picker.disabled = false;
      })
      .catch(function () { picker.disabled = true; });
    picker.addEventListener("change", function () { openWith(picker.value); });
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    var t = ev.target;
    if (t && t.closest && t.closest("input, select, textarea")) { return; }
    var to = "";
    if (ev.key === "n" || ev.key === "PageDown") { to = el.dataset.next; }
    if (ev.key === "p" || ev.key === "PageUp") { to = el.dataset.prev; }
    if (to) {
      ev.preventDefault();
      ev.stopPropagation();
      window.location.assign(to);
    }
  }, true);
}());
