/* The portal's image viewer: OpenSeadragon (bundled, see vendor/) on the API's tile route
   /api/v1/images/{id}/tiles/{level}/{row}/{col}.jpg, with

   - a channel legend (swatch, name, marker; on/off, solo, window and gamma with live tiles,
     reset to the preset). Changes are the reader's own view: they go to the tile route as
     an inline render spec (spec= : base64url of zlib-compressed preset JSON, the tile
     route's compact parameter) and into this page's URL, never into a stored preset;
   - a preset picker (the server lists the presets by name, version, author and
     "reference"); choosing one opens that version;
   - a URL that pins the view: ?preset=<id>@<version>&c=<channels>&x=&y=&zoom= (x, y: the
     level-0 pixel at the centre; zoom: screen pixels per image pixel). c= lists every
     channel as [-]<n>|<start>:<end>[|<gamma>] (n from 1; "-": off), like OMERO's c=;
   - a scale bar (µm, from the image's physical pixel size), a loading indicator, the
     overview map, fullscreen (f), n / p (or PageDown / PageUp) for the next / previous
     slide, u for the next slide not reviewed yet (staff), 1-9 to switch a channel, r to
     reset, ? for the list; once the image is drawn, the next slide's first tiles are
     fetched, so that n shows it at once.
   A guided view's step (guide.html) gives its view in data-view instead of the URL, and
   its previous / next steps as data-prev / data-next. Saved views, "save as preset"
   (views.js), values under the cursor (cursor.js), drawing (annotate.js) and composing a
   guided view (compose.js) use window.plexhubView's writeUrl and specDocument.

   All URLs come from the page (data- attributes and the JSON model the server wrote), so
   it works under any mount prefix; the session cookie authenticates (same origin). The
   drawer is OpenSeadragon's canvas one: its WebGL drawer stalls the page for hundreds of
   milliseconds on the many machines (remote desktops, VMs) that render GL in software. */
(function () {
  "use strict";
  var el = document.getElementById("viewer");
  var modelEl = document.getElementById("viewer-model");
  if (!el || !modelEl || typeof OpenSeadragon !== "function") { return; }
  var model = JSON.parse(modelEl.textContent);
  var nextEl = document.getElementById("next-slide");
  var nextSlide = nextEl ? JSON.parse(nextEl.textContent) : null;
  var geo = model.geometry;
  // a guided view's step names its view in the page (data-view); else the page's URL
  var params = new URLSearchParams(el.dataset.view || window.location.search);
  var presetRef = model.preset_ref;
  var preset = model.channels.map(function (c) { return Object.assign({}, c); });
  var channels = model.channels.map(function (c) { return Object.assign({}, c); });
  var loading = document.getElementById("loading");
  var plexhub = { spec: "", ready: false, drawn: 0 };
  window.plexhubView = plexhub;  // for tests and the bench

  // ------------------------------------------------------------ the view in the URL
  function round(v) { return Math.round(v * 1000) / 1000; }

  function channelsParam() {
    return channels.map(function (c, i) {
      var s = (c.active ? "" : "-") + (i + 1) + "|" + round(c.start) + ":" + round(c.end);
      return c.gamma !== 1 ? s + "|" + round(c.gamma) : s;
    }).join(",");
  }

  function parseChannels(text) {
    text.split(",").forEach(function (part) {
      var m = /^(-?)(\d+)\|(-?[\d.e+-]+):(-?[\d.e+-]+)(?:\|([\d.e+-]+))?$/.exec(part.trim());
      if (!m) { return; }
      var c = channels[parseInt(m[2], 10) - 1];
      var start = parseFloat(m[3]), end = parseFloat(m[4]);
      if (!c || !isFinite(start) || !isFinite(end) || end <= start) { return; }
      c.active = m[1] !== "-";
      c.start = start; c.end = end;
      c.min = Math.min(c.min, start); c.max = Math.max(c.max, end);
      var g = m[5] ? parseFloat(m[5]) : 1;
      c.gamma = g > 0 && g <= 10 ? g : 1;
    });
  }

  function changed() {
    return channels.some(function (c, i) {
      var p = preset[i];
      return c.active !== p.active || c.start !== p.start || c.end !== p.end ||
        c.gamma !== p.gamma;
    });
  }

  var viewer = null;
  function writeUrl() {
    var q = new URLSearchParams(window.location.search);
    ["preset", "c", "x", "y", "zoom", "spec"].forEach(function (k) { q.delete(k); });
    if (presetRef) { q.set("preset", presetRef); }
    if (changed()) { q.set("c", channelsParam()); }
    if (viewer && viewer.world.getItemCount() > 0) {
      var vp = viewer.viewport;
      var c = vp.viewportToImageCoordinates(vp.getCenter(true));
      q.set("x", String(Math.round(c.x)));
      q.set("y", String(Math.round(c.y)));
      q.set("zoom", String(round(vp.viewportToImageZoom(vp.getZoom(true)))));
    }
    var url = window.location.pathname + "?" + q.toString().replace(/%7C/g, "|")
      .replace(/%2C/g, ",").replace(/%3A/g, ":").replace(/%40/g, "@");
    window.history.replaceState(null, "", url);
  }

  plexhub.writeUrl = writeUrl;  // views.js: the view as it is now, in the URL

  // ------------------------------------------------------------ tiles
  function b64url(bytes) {
    var s = "";
    for (var i = 0; i < bytes.length; i += 0x8000) {
      s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function specDocument() {
    return {
      name: "view", channels: channels.map(function (c) {
        var entry = { index: c.index, active: c.active, gamma: c.gamma,
          inverted: c.inverted, window: { start: c.start, end: c.end } };
        if (c.label) { entry.label = c.label; }
        if (c.lut) { entry.lut = c.lut; } else { entry.color = c.color; }
        return entry;
      })
    };
  }

  plexhub.specDocument = specDocument;  // views.js: "save as preset"

  function encodeSpec(doc) {  // base64url(zlib(JSON)), as plexhub.api.tiles.parse_spec reads
    var stream = new Blob([JSON.stringify(doc)]).stream()
      .pipeThrough(new CompressionStream("deflate"));
    return new Response(stream).arrayBuffer().then(function (buf) {
      return b64url(new Uint8Array(buf));
    });
  }

  function tileQuery(ref, spec) {
    if (spec) { return "spec=" + spec; }
    return ref ? "preset=" + encodeURIComponent(ref) : "";
  }

  function tileSource(base, g, query) {
    return {
      width: g.width, height: g.height, tileSize: g.tile, tileOverlap: 0,
      minLevel: Math.max(0, g.top - (g.levels - 1)), maxLevel: g.top,
      getTileUrl: function (level, x, y) {
        return base + (g.top - level) + "/" + y + "/" + x + ".jpg?size=" + g.tile +
          (query ? "&" + query : "");
      }
    };
  }

  // ------------------------------------------------------------ the viewer
  viewer = OpenSeadragon({
    element: el,
    prefixUrl: el.dataset.prefix,
    tileSources: tileSource(el.dataset.tiles, geo, tileQuery(presetRef, "")),
    drawer: "canvas",
    immediateRender: false,       // the smallest level first (preloaded by the page)
    maxTilesPerFrame: 16,         // OpenSeadragon 6 asks for one new tile per frame
    imageLoaderLimit: 8,
    timeout: 15000,
    animationTime: 0.4,
    springStiffness: 12,
    blendTime: 0,
    // the page's own zoom buttons (below): OpenSeadragon's would fetch 12 button images
    // while the first tiles load, on the same few connections
    showNavigationControl: false,
    showNavigator: true,
    navigatorPosition: "BOTTOM_RIGHT",
    navigatorSizeRatio: 0.18,
    navigatorAutoFade: false,
    showFullPageControl: false,
    maxZoomPixelRatio: 4,
    visibilityRatio: 0.5,
    gestureSettingsMouse: { clickToZoom: false, flickEnabled: false }
  });
  window.plexhubViewer = viewer;

  var sx = parseFloat(params.get("x")), sy = parseFloat(params.get("y"));
  var sz = parseFloat(params.get("zoom"));
  if (params.get("c")) { parseChannels(params.get("c")); }
  viewer.addOnceHandler("open", function () {
    var vp = viewer.viewport;
    if (isFinite(sx) && isFinite(sy) && isFinite(sz) && sz > 0) {
      vp.zoomTo(vp.imageToViewportZoom(sz), null, true);
      vp.panTo(vp.imageToViewportCoordinates(sx, sy), true);
    }
    watchLoading(viewer.world.getItemAt(0));
    if (changed()) { applyView(); }
  });
  viewer.addHandler("tile-drawn", function () { plexhub.drawn += 1; });

  function setLoading(on) {
    if (loading) { loading.hidden = !on; }
    el.setAttribute("aria-busy", on ? "true" : "false");
  }

  var prefetched = false;
  function watchLoading(item) {
    if (!item) { return; }
    setLoading(!item.getFullyLoaded());
    item.addHandler("fully-loaded-change", function (ev) {
      if (viewer.world.getIndexOfItem(item) !== viewer.world.getItemCount() - 1) { return; }
      setLoading(!ev.fullyLoaded);
      if (ev.fullyLoaded) {
        plexhub.ready = true;
        if (!prefetched) { prefetched = true; window.setTimeout(prefetchNext, 50); }
      }
    });
  }

  // A new rendering goes on top of the old one, which is removed once the new one is
  // drawn: the picture never goes black between two settings.
  var generation = 0;
  function applyView() {
    var mine = ++generation;
    writeUrl();
    updateLegend();
    var doc = specDocument();
    var encoded = changed() ? encodeSpec(doc) : Promise.resolve("");
    encoded.then(function (spec) {
      if (mine !== generation) { return; }
      plexhub.spec = spec;
      plexhub.ready = false;
      setLoading(true);
      viewer.addTiledImage({
        tileSource: tileSource(el.dataset.tiles, geo, tileQuery(presetRef, spec)),
        index: viewer.world.getItemCount(),
        success: function (ev) {
          var item = ev.item;
          if (mine !== generation) { viewer.world.removeItem(item); return; }
          // keep only the bottom layer and this one while it loads
          while (viewer.world.getItemCount() > 2) {
            viewer.world.removeItem(viewer.world.getItemAt(1));
          }
          watchLoading(item);
          var done = function () {
            while (viewer.world.getItemCount() > 1 && viewer.world.getItemAt(0) !== item) {
              viewer.world.removeItem(viewer.world.getItemAt(0));
            }
          };
          if (item.getFullyLoaded()) { done(); } else {
            item.addOnceHandler("fully-loaded-change", done);
          }
        }
      });
    });
  }

  var pending = null;
  function applySoon() {  // while a slider moves: at most every 150 ms
    if (pending) { window.clearTimeout(pending); }
    pending = window.setTimeout(function () { pending = null; applyView(); }, 150);
  }

  viewer.addHandler("animation-finish", function () { writeUrl(); });

  // ------------------------------------------------------------ the legend
  var list = document.getElementById("channels");
  var resetBtn = document.getElementById("reset");
  var stateEl = document.getElementById("view-state");
  var rows = [];

  function fmt(v) {
    var a = Math.abs(v);
    if (a >= 100) { return String(Math.round(v)); }
    if (a >= 1) { return v.toFixed(1); }
    return v.toPrecision(2);
  }

  function step(c) { return (c.max - c.min) > 20 ? 1 : (c.max - c.min) / 200; }

  function slider(label, min, max, stepSize, value, oninput) {
    var wrap = document.createElement("label");
    wrap.className = "slider";
    var name = document.createElement("span");
    name.textContent = label;
    var input = document.createElement("input");
    input.type = "range";
    input.min = String(min); input.max = String(max); input.step = String(stepSize);
    input.value = String(value);
    input.setAttribute("aria-label", label);
    var out = document.createElement("output");
    input.addEventListener("input", function () { oninput(parseFloat(input.value)); });
    wrap.appendChild(name); wrap.appendChild(input); wrap.appendChild(out);
    return { wrap: wrap, input: input, out: out };
  }

  function buildLegend() {
    if (!list) { return; }
    channels.forEach(function (c, i) {
      var name = c.marker && c.marker !== c.label ? c.label + " · " + c.marker : c.label;
      var li = document.createElement("li");
      li.className = "channel";
      li.dataset.channel = String(i);
      var head = document.createElement("div");
      head.className = "head";
      var toggle = document.createElement("input");
      toggle.type = "checkbox";
      toggle.id = "ch-" + i;
      toggle.setAttribute("aria-label", "Show " + (c.marker || c.label));
      var label = document.createElement("label");
      label.htmlFor = toggle.id;
      var swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = "#" + c.color;
      var text = document.createElement("span");
      text.className = "name";
      text.textContent = (i < 9 ? (i + 1) + " " : "") + name;
      label.appendChild(swatch); label.appendChild(text);
      var solo = document.createElement("button");
      solo.type = "button";
      solo.className = "solo";
      solo.textContent = "solo";
      solo.setAttribute("aria-label", "Show only " + (c.marker || c.label));
      head.appendChild(toggle); head.appendChild(label); head.appendChild(solo);
      var lo = slider((c.marker || c.label) + " window start", c.min, c.max, step(c), c.start,
        function (v) { c.start = Math.min(v, c.end - step(c)); applySoon(); });
      var hi = slider((c.marker || c.label) + " window end", c.min, c.max, step(c), c.end,
        function (v) { c.end = Math.max(v, c.start + step(c)); applySoon(); });
      var ga = slider((c.marker || c.label) + " gamma", 0.2, 5, 0.05, c.gamma,
        function (v) { c.gamma = v; applySoon(); });
      lo.wrap.querySelector("span").textContent = "min";
      hi.wrap.querySelector("span").textContent = "max";
      ga.wrap.querySelector("span").textContent = "γ";
      toggle.addEventListener("change", function () { c.active = toggle.checked; applyView(); });
      solo.addEventListener("click", function () { soloChannel(i); });
      li.appendChild(head); li.appendChild(lo.wrap); li.appendChild(hi.wrap);
      li.appendChild(ga.wrap);
      list.appendChild(li);
      rows.push({ li: li, toggle: toggle, solo: solo, lo: lo, hi: hi, ga: ga });
    });
    updateLegend();
  }

  function updateLegend() {
    rows.forEach(function (r, i) {
      var c = channels[i];
      r.toggle.checked = c.active;
      r.li.classList.toggle("off", !c.active);
      r.lo.input.value = String(c.start); r.lo.out.textContent = fmt(c.start);
      r.hi.input.value = String(c.end); r.hi.out.textContent = fmt(c.end);
      r.ga.input.value = String(c.gamma); r.ga.out.textContent = c.gamma.toFixed(2);
      var only = c.active && channels.every(function (o, j) { return j === i || !o.active; });
      r.solo.setAttribute("aria-pressed", only ? "true" : "false");
    });
    var mine = changed();
    if (resetBtn) { resetBtn.disabled = !mine; }
    if (stateEl) {
      stateEl.textContent = mine ? "your view (the preset is unchanged)" : model.preset_name;
    }
  }

  var beforeSolo = null;
  function soloChannel(i) {
    var only = channels[i].active &&
      channels.every(function (o, j) { return j === i || !o.active; });
    if (only && beforeSolo) {
      channels.forEach(function (c, j) { c.active = beforeSolo[j]; });
      beforeSolo = null;
    } else {
      beforeSolo = channels.map(function (c) { return c.active; });
      channels.forEach(function (c, j) { c.active = j === i; });
    }
    applyView();
  }

  function reset() {
    channels.forEach(function (c, i) { Object.assign(c, preset[i]); });
    beforeSolo = null;
    applyView();
  }

  buildLegend();
  if (resetBtn) { resetBtn.addEventListener("click", reset); }

  // ------------------------------------------------------------ preset picker
  var picker = document.getElementById("preset");
  if (picker) {
    picker.addEventListener("change", function () {
      var q = new URLSearchParams(window.location.search);
      q.delete("c");
      if (picker.value) { q.set("preset", picker.value); } else { q.delete("preset"); }
      window.location.assign(window.location.pathname + "?" + q.toString());
    });
  }

  // ------------------------------------------------------------ scale bar
  var scale = document.getElementById("scalebar");
  function updateScale() {
    if (!scale || !model.um_per_pixel || viewer.world.getItemCount() === 0) { return; }
    var vp = viewer.viewport;
    var screenPerImage = vp.viewportToImageZoom(vp.getZoom(true)) *
      (vp.getContainerSize().x / (el.clientWidth || vp.getContainerSize().x));
    var umPerScreen = model.um_per_pixel / screenPerImage;
    var target = 120 * umPerScreen;  // about 120 px long
    var pow = Math.pow(10, Math.floor(Math.log10(target)));
    var nice = [1, 2, 5, 10].map(function (m) { return m * pow; })
      .filter(function (v) { return v <= target; }).pop() || pow;
    var px = nice / umPerScreen;
    var text = nice >= 1000 ? (nice / 1000) + " mm" : (nice >= 1 ? nice : nice.toPrecision(1)) + " µm";
    scale.querySelector(".bar").style.width = Math.round(px) + "px";
    scale.querySelector(".text").textContent = text;
    scale.dataset.um = String(nice);
    scale.hidden = false;
  }
  viewer.addHandler("update-viewport", updateScale);
  viewer.addHandler("open", updateScale);

  // ------------------------------------------------------------ next slide, prefetched
  // OpenSeadragon's TileSource.getClosestLevel: the largest level that is one tile, the
  // first (and lowest) one the main view draws (viewer.py's Geometry.closest_level)
  function closestLevel(src, g) {
    var level = src.minLevel + 1;
    for (; level <= src.maxLevel; level++) {
      var s = Math.pow(2, level - g.top);
      if (Math.ceil(g.width * s / g.tile) > 1 || Math.ceil(g.height * s / g.tile) > 1) { break; }
    }
    return level - 1;
  }

  function prefetchNext() {
    if (!nextSlide) { return; }
    var g = nextSlide;
    var size = viewer.viewport.getContainerSize();
    var fit = Math.min(size.x / g.width, size.y / g.height);  // the home view's scale
    var base = el.dataset.api + g.id + "/tiles/";
    var src = tileSource(base, g, tileQuery(g.preset, ""));
    // what its page preloads: the main view's first level, then the overview map's
    var urls = [src.getTileUrl(closestLevel(src, g), 0, 0)];
    if (closestLevel(src, g) !== src.minLevel) { urls.push(src.getTileUrl(src.minLevel, 0, 0)); }
    for (var level = src.maxLevel; level >= src.minLevel; level--) {
      var s = Math.pow(2, level - g.top);
      if (s * 0.5 > fit && level > src.minLevel) { continue; }  // sharper than drawn
      var cols = Math.ceil(g.width * s / g.tile), rowsN = Math.ceil(g.height * s / g.tile);
      if (cols * rowsN > 16) { continue; }
      for (var r = 0; r < rowsN; r++) {
        for (var c = 0; c < cols; c++) {
          var u = src.getTileUrl(level, c, r);
          if (urls.indexOf(u) < 0) { urls.push(u); }
        }
      }
      if (urls.length >= 3) { break; }
    }
    plexhub.prefetched = urls;
    urls.forEach(function (u) { var im = new Image(); im.src = u; });
  }

  // ------------------------------------------------------------ fullscreen, keys
  var wrap = document.getElementById("viewer-wrap") || el;
  function fullscreen() {
    if (document.fullscreenElement) { document.exitFullscreen(); } else if (wrap.requestFullscreen) {
      wrap.requestFullscreen();
    }
  }
  [["zoom-in", function () { viewer.viewport.zoomBy(1.5); }],
   ["zoom-out", function () { viewer.viewport.zoomBy(1 / 1.5); }],
   ["zoom-home", function () { viewer.viewport.goHome(); }]].forEach(function (b) {
    var btn = document.getElementById(b[0]);
    if (btn) {
      btn.addEventListener("click", function () { b[1](); viewer.viewport.applyConstraints(); });
    }
  });
  var fsBtn = document.getElementById("fullscreen");
  if (fsBtn) { fsBtn.addEventListener("click", fullscreen); }
  var copyBtn = document.getElementById("copy-link");
  if (copyBtn) {
    copyBtn.addEventListener("click", function () {
      writeUrl();
      if (navigator.clipboard) { navigator.clipboard.writeText(window.location.href); }
      copyBtn.textContent = "Link copied";
    });
  }
  var help = document.getElementById("shortcuts");
  var helpBtn = document.getElementById("help");
  function toggleHelp() { if (help) { help.hidden = !help.hidden; } }
  if (helpBtn) { helpBtn.addEventListener("click", toggleHelp); }

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    var t = ev.target;
    if (t && t.closest && t.closest("input[type=text], select, textarea")) { return; }
    var to = "";
    if (ev.key === "n" || ev.key === "PageDown") { to = el.dataset.next; }
    if (ev.key === "p" || ev.key === "PageUp") { to = el.dataset.prev; }
    var unreviewed = document.getElementById("next-unreviewed");
    if (ev.key === "u" && unreviewed) { to = unreviewed.href; }
    var handled = true;
    if (to) {
      window.location.assign(to);
    } else if (/^[1-9]$/.test(ev.key) && channels[parseInt(ev.key, 10) - 1]) {
      var c = channels[parseInt(ev.key, 10) - 1];
      c.active = !c.active;
      applyView();
    } else if (ev.key === "r") {
      reset();
    } else if (ev.key === "f") {
      fullscreen();
    } else if (ev.key === "?") {
      toggleHelp();
    } else if (ev.key === "Escape" && help && !help.hidden) {
      help.hidden = true;
    } else {
      handled = false;
    }
    if (handled) { ev.preventDefault(); ev.stopPropagation(); }
  }, true);
}());
