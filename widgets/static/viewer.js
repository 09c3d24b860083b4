// plexhub notebook viewer: tiles on a canvas (pan, zoom), channel panel, scale bar, values
// under the cursor, exports. Self-contained ES module (anywidget); loads nothing from the
// network. Every edit is a message to the kernel, which owns the state and syncs it back.

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) e.append(c);
  return e;
}

function niceBar(umPerPx, targetPx) {
  const raw = umPerPx * targetPx;
  const exp = Math.floor(Math.log10(raw));
  let um = Math.pow(10, exp);
  for (const m of [1, 2, 5, 10]) if (m * Math.pow(10, exp) <= raw) um = m * Math.pow(10, exp);
  const label = um >= 1000 ? `${+(um / 1000).toPrecision(3)} mm`
    : um >= 1 ? `${+um.toPrecision(3)} µm` : `${+(um * 1000).toPrecision(3)} nm`;
  return { px: um / umPerPx, label };
}

function render({ model, el: root }) {
  const info = () => model.get("info");
  const size = () => model.get("size");
  const op = (name, args = {}) => model.send({ type: "op", op: name, args });

  // ---- layout --------------------------------------------------------------------------
  root.classList.add("plexhub-viewer");
  const canvas = el("canvas", { class: "plexhub-canvas", tabindex: "0" });
  const overlay = el("div", { class: "plexhub-readout" });
  const stage = el("div", { class: "plexhub-stage" }, canvas, overlay);
  const status = el("div", { class: "plexhub-status" });
  const search = el("input", { type: "search", placeholder: "search channels",
                               class: "plexhub-search" });
  const regex = el("input", { type: "checkbox", title: "regular expression" });
  const groups = el("span", { class: "plexhub-groups" });
  const list = el("div", { class: "plexhub-rows" });
  const presetSel = el("select", { class: "plexhub-presets" });
  const nameIn = el("input", { type: "text", placeholder: "preset name",
                               class: "plexhub-name" });
  const reasonIn = el("input", { type: "text", placeholder: "reason for change",
                                 "aria-label": "reason for change", class: "plexhub-reason" });
  const dirtyMark = el("span", { class: "plexhub-dirty", title: "unsaved changes" });
  const lockBox = el("input", { type: "checkbox", class: "plexhub-lock" });
  const btn = (label, fn, cls) => el("button", { class: cls || "", onclick: fn }, label);
  const filter = () => ({ query: search.value, regex: regex.checked });

  const toolbar = el("div", { class: "plexhub-toolbar" },
    search, el("label", {}, regex, "regex"),
    btn("All", () => op("select_all", filter()), "plexhub-all"),
    btn("None", () => op("select_none", filter()), "plexhub-none"),
    btn("Auto all", () => op("auto", {}), "plexhub-autoall"),
    btn("Undo", () => op("undo"), "plexhub-undo"),
    el("label", {}, lockBox, "lock"), groups);
  const presetBar = el("div", { class: "plexhub-toolbar" },
    presetSel, btn("Apply", () => presetSel.value && op("apply", { ref: presetSel.value }),
                   "plexhub-apply"),
    nameIn, reasonIn,
    btn("Save", () => op("save", { name: nameIn.value, reason: reasonIn.value }), "plexhub-save"),
    dirtyMark,
    btn("PNG", () => model.send({ type: "export", kind: "png" }), "plexhub-export-png"),
    btn("OME-TIFF", () => model.send({ type: "export", kind: "ome-tiff" }),
        "plexhub-export-tiff"),
    btn("Share", () => op("share"), "plexhub-share"));
  const hist = el("canvas", { class: "plexhub-histogram", role: "img", height: "120",
                              "aria-label": "histogram" });
  const panel = el("div", { class: "plexhub-panel" }, toolbar, list, hist);
  root.append(el("div", { class: "plexhub-main" }, stage, panel), presetBar, status);
  lockBox.addEventListener("change", () => op("lock", { locked: lockBox.checked }));
  search.addEventListener("input", () => drawRows());
  regex.addEventListener("change", () => drawRows());

  // ---- tiles ---------------------------------------------------------------------------
  const ctx = canvas.getContext("2d");
  const tiles = new Map();    // gen/level/row/col -> ImageBitmap
  const latest = new Map();   // level/row/col -> ImageBitmap of any generation
  const pending = new Set();  // requested, not answered
  // At most MAX_IN_FLIGHT requests wait in the kernel (it renders them one after another);
  // the next ones come from `queue`, which every draw replaces with what the view shown
  // then still lacks: a zoom or pan leaves the tiles of the views it passed unrequested.
  const MAX_IN_FLIGHT = 3;
  let queue = [];
  const counts = { requested: 0, received: 0 };
  const ZOOM_REST_MS = 60;
  let zoomRestsAt = 0;
  let drawQueued = false;

  function pump() {
    if (performance.now() < zoomRestsAt) return;  // draw() calls again once it rests
    while (pending.size < MAX_IN_FLIGHT && queue.length) {
      const t = queue.shift();
      if (tiles.has(t.key) || pending.has(t.key)) continue;
      pending.add(t.key);
      counts.requested++;
      model.send({ type: "tiles", gen: t.gen, level: t.level, tiles: [[t.row, t.col]] });
    }
    canvas.dataset.tilesRequested = String(counts.requested);
  }

  function level() {
    const z = model.get("viewport").zoom, lv = info().levels;
    let best = 0;
    for (let i = 0; i < lv.length; i++) {
      const d = Math.max(lv[0][0] / lv[i][0], lv[0][1] / lv[i][1]);
      if (d <= 1 / z + 1e-9) best = i;
    }
    return best;
  }

  function draw() {
    drawQueued = false;
    const { width, height } = size();
    if (canvas.width !== width) canvas.width = width;
    if (canvas.height !== height) canvas.height = height;
    const vp = model.get("viewport"), inf = info();
    if (!vp || !inf.levels) return;
    const lv = level(), [lh, lw] = inf.levels[lv], T = inf.tile;
    const fy = inf.levels[0][0] / lh, fx = inf.levels[0][1] / lw;
    const x0 = vp.x - width / 2 / vp.zoom, y0 = vp.y - height / 2 / vp.zoom;
    ctx.fillStyle = "#000"; ctx.fillRect(0, 0, width, height);
    const gen = model.get("gen"), want = [];
    const need = (level, r, c, key) => {
      if (!tiles.has(key) && !pending.has(key)) want.push({ key, gen, level, row: r, col: c });
    };
    // underneath, the coarsest level (a tile or a few): something to see while tiles load
    const top = inf.levels.length - 1;
    if (top > lv) {
      const [th, tw] = inf.levels[top], ty = inf.levels[0][0] / th, tx = inf.levels[0][1] / tw;
      ctx.imageSmoothingEnabled = true;
      for (let r = 0; r < Math.ceil(th / T); r++) {
        for (let c = 0; c < Math.ceil(tw / T); c++) {
          const key = `${gen}/${top}/${r}/${c}`;
          const bmp = tiles.get(key) || latest.get(`${top}/${r}/${c}`);
          if (bmp) {
            ctx.drawImage(bmp, (c * T * tx - x0) * vp.zoom, (r * T * ty - y0) * vp.zoom,
                          bmp.width * tx * vp.zoom, bmp.height * ty * vp.zoom);
          }
          need(top, r, c, key);
        }
      }
    }
    ctx.imageSmoothingEnabled = false;
    const c0 = Math.max(0, Math.floor(x0 / fx / T));
    const c1 = Math.min(Math.ceil(lw / T) - 1, Math.floor((x0 + width / vp.zoom) / fx / T));
    const r0 = Math.max(0, Math.floor(y0 / fy / T));
    const r1 = Math.min(Math.ceil(lh / T) - 1, Math.floor((y0 + height / vp.zoom) / fy / T));
    const fine = [];
    let exact = 0;  // tiles of these settings and this level drawn
    for (let r = r0; r <= r1; r++) {
      for (let c = c0; c <= c1; c++) {
        const key = `${gen}/${lv}/${r}/${c}`;
        const bmp = tiles.get(key) || latest.get(`${lv}/${r}/${c}`);
        if (bmp) {
          ctx.drawImage(bmp, (c * T * fx - x0) * vp.zoom, (r * T * fy - y0) * vp.zoom,
                        bmp.width * fx * vp.zoom, bmp.height * fy * vp.zoom);
          if (tiles.has(key)) exact++;
        }
        // nearest the centre first
        const d = Math.hypot((c + 0.5) * T * fx - vp.x, (r + 0.5) * T * fy - vp.y);
        fine.push([d, r, c, key]);
      }
    }
    fine.sort((a, b) => a[0] - b[0]);
    for (const [, r, c, key] of fine) need(lv, r, c, key);
    queue = want;
    canvas.dataset.viewTiles = String(fine.length);
    // what this frame shows (the benchmark times "new pixels" by these)
    canvas.dataset.drawnReceived = String(counts.received);
    canvas.dataset.drawnGen = exact ? gen : "";
    canvas.dataset.drawnTiles = String(exact);
    canvas.dataset.level = String(lv);
    // while the wheel turns, each step is a view left ~30 ms later: ask once it rests
    const wait = zoomRestsAt - performance.now();
    if (wait > 0) setTimeout(redraw, wait + 1);
    pump();
    drawScaleBar(width, height, vp.zoom);
  }
  const redraw = () => { if (!drawQueued) { drawQueued = true; requestAnimationFrame(draw); } };

  function drawScaleBar(width, height, zoom) {
    const um = info().pixel_size_um;
    if (!um) return;
    const bar = niceBar(um / zoom, 120);
    const x1 = width - 14, y1 = height - 14;
    ctx.fillStyle = "#fff";
    ctx.fillRect(x1 - bar.px, y1 - 4, bar.px, 4);
    ctx.font = "12px sans-serif"; ctx.textAlign = "center";
    ctx.fillText(bar.label, x1 - bar.px / 2, y1 - 8);
  }

  model.on("msg:custom", async (msg, buffers) => {
    if (msg.type === "tile") {
      const key = `${msg.gen}/${msg.level}/${msg.row}/${msg.col}`;
      pending.delete(key);
      pump();
      if (msg.stale || !buffers.length) return;  // settings changed before it was rendered
      counts.received++;
      canvas.dataset.tilesReceived = String(counts.received);
      canvas.dataset.tileBytes = String((+canvas.dataset.tileBytes || 0) + buffers[0].byteLength);
      const bmp = await createImageBitmap(new Blob([buffers[0]],
                                                   { type: msg.mime || "image/jpeg" }));
      tiles.set(key, bmp);
      latest.set(`${msg.level}/${msg.row}/${msg.col}`, bmp);
      if (tiles.size > 600) tiles.delete(tiles.keys().next().value);
      if (msg.gen === model.get("gen")) redraw();
    } else if (msg.type === "probe") {
      const parts = Object.entries(msg.values).map(([k, v]) => `${k}: ${+v.toPrecision(6)}`);
      overlay.textContent = `x ${Math.floor(msg.x)}, y ${Math.floor(msg.y)}  ` + parts.join("  ");
    } else if (msg.type === "export") {
      const url = URL.createObjectURL(new Blob([buffers[0]], { type: msg.mime }));
      const a = el("a", { href: url, download: msg.filename, class: "plexhub-download" },
                   msg.filename);
      status.replaceChildren("exported: ", a);
      a.click();
    } else if (msg.type === "share") {
      status.replaceChildren(el("input", { type: "text", readonly: true, value: msg.url,
                                           class: "plexhub-share-url", size: "80" }));
    }
  });
  model.on("change:gen", redraw);
  model.on("change:viewport", redraw);
  model.on("change:size", redraw);

  // ---- pan, zoom, probe ------------------------------------------------------------------
  let drag = null, probeTimer = null;
  const setViewport = (vp) => { model.set("viewport", vp); model.save_changes(); redraw(); };
  canvas.addEventListener("mousedown", (e) => {
    drag = { x: e.clientX, y: e.clientY, vp: { ...model.get("viewport") } };
  });
  canvas.addEventListener("mouseup", (e) => {  // a click that did not pan: the cell there
    if (!drag || Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) > 3) return;
    const vp = model.get("viewport"), r = canvas.getBoundingClientRect();
    model.send({ type: "click", x: vp.x + (e.clientX - r.left - r.width / 2) / vp.zoom,
                 y: vp.y + (e.clientY - r.top - r.height / 2) / vp.zoom });
  });
  window.addEventListener("mouseup", () => { drag = null; });
  canvas.addEventListener("mousemove", (e) => {
    const vp = model.get("viewport");
    if (drag) {
      setViewport({ ...drag.vp, x: drag.vp.x - (e.clientX - drag.x) / vp.zoom,
                    y: drag.vp.y - (e.clientY - drag.y) / vp.zoom });
      return;
    }
    const r = canvas.getBoundingClientRect();
    const x = vp.x + (e.clientX - r.left - r.width / 2) / vp.zoom;
    const y = vp.y + (e.clientY - r.top - r.height / 2) / vp.zoom;
    clearTimeout(probeTimer);
    probeTimer = setTimeout(() => model.send({ type: "probe", x, y }), 80);
  });
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const vp = model.get("viewport"), r = canvas.getBoundingClientRect();
    const f = Math.exp(-e.deltaY * 0.0015);
    const zoom = Math.min(32, Math.max(1e-4, vp.zoom * f));
    zoomRestsAt = performance.now() + ZOOM_REST_MS;
    const mx = e.clientX - r.left - r.width / 2, my = e.clientY - r.top - r.height / 2;
    setViewport({ x: vp.x + mx / vp.zoom - mx / zoom, y: vp.y + my / vp.zoom - my / zoom, zoom });
  }, { passive: false });

  // ---- channel rows ----------------------------------------------------------------------
  function matches(row) {
    const q = search.value;
    if (!q) return true;
    const names = [row.label || "", row.marker || ""];
    if (regex.checked) {
      try { const re = new RegExp(q, "i"); return names.some((n) => re.test(n)); }
      catch { return true; }
    }
    return names.some((n) => n.toLowerCase().includes(q.toLowerCase()));
  }

  function num(value, onchange, cls, step) {
    return el("input", { type: "number", value: String(+Number(value).toPrecision(6)), class: cls,
                         step: step || "any",
                         onchange: (e) => onchange(parseFloat(e.target.value)),
                         onkeydown: (e) => { if (e.key === "Enter") e.target.blur(); } });
  }

  function drawRows() {
    const rows = model.get("rows"), locked = model.get("locked"), focus = model.get("focus");
    const frag = document.createDocumentFragment();
    for (const r of rows) {
      if (!matches(r)) continue;
      const i = r.index;
      const lo = r.min ?? Math.min(r.start, 0), hi = r.max ?? r.end;
      const range = (v, which) => el("input", {
        type: "range", min: String(lo), max: String(hi), step: String((hi - lo) / 1000 || 1),
        value: String(v), class: `plexhub-${which}-slider`,
        onchange: (e) => {
          const x = parseFloat(e.target.value);
          op("set_window", { index: i, start: which === "start" ? x : r.start,
                             end: which === "end" ? x : r.end });
        } });
      const row = el("div", { class: "plexhub-row" + (i === focus ? " focus" : ""),
                              "data-index": String(i) },
        el("input", { type: "checkbox", class: "plexhub-active", checked: r.active,
                      onchange: (e) => op("set_active", { indices: [i], active: e.target.checked }) }),
        el("input", { type: "color", class: "plexhub-color", value: `#${(r.color || "FFFFFF").toLowerCase()}`,
                      onchange: (e) => op("set_color", { index: i, color: e.target.value }) }),
        el("span", { class: "plexhub-label", title: `channel ${i}`,
                     onclick: () => { model.set("focus", i); model.save_changes(); drawRows(); } },
           r.marker ? `${r.marker} (${r.label})` : r.label),
        num(r.start, (v) => op("set_window", { index: i, start: v, end: r.end }), "plexhub-start"),
        num(r.end, (v) => op("set_window", { index: i, start: r.start, end: v }), "plexhub-end"),
        range(r.start, "start"), range(r.end, "end"),
        el("label", {}, "γ", num(r.gamma, (v) => op("set_gamma", { index: i, gamma: v }),
                                 "plexhub-gamma", "0.05")),
        el("label", {}, el("input", { type: "checkbox", class: "plexhub-invert", checked: r.inverted,
          onchange: (e) => op("set_inverted", { index: i, inverted: e.target.checked }) }), "inv"),
        el("input", { type: "text", class: "plexhub-group", value: r.group || "", placeholder: "group",
                      onchange: (e) => op("set_group", { indices: [i], group: e.target.value }) }),
        btn("auto", () => op("auto", { indices: [i] }), "plexhub-auto"),
        btn("solo", () => op("solo", { index: i }), "plexhub-solo"));
      for (const input of row.querySelectorAll("input, button")) input.disabled = locked;
      frag.append(row);
    }
    list.replaceChildren(frag);
    const gs = [...new Set(rows.map((r) => r.group).filter(Boolean))];
    groups.replaceChildren(...gs.map((g) => btn(g, () => op("toggle_group", { group: g }),
                                                "plexhub-group-toggle")));
    for (const b of [...toolbar.querySelectorAll("button"), presetBar.querySelector(".plexhub-apply")]) {
      b.disabled = locked && !b.classList.contains("plexhub-undo") ? true : false;
    }
  }

  // ---- histogram of the focused channel: log counts, the window as a draggable box --------
  const hctx = hist.getContext("2d");
  let histDrag = null;  // {edge: "start" | "end", value}
  function histGeometry() {
    const h = model.get("histogram") || {}, rows = model.get("rows");
    const row = rows.find((r) => r.index === h.index);
    if (!row || !h.edges) return null;
    const e = h.edges, lo0 = Math.min(e[0], row.start), hi0 = Math.max(e[e.length - 1], row.end);
    const pad = (hi0 - lo0) * 0.02 || 1;
    const lo = lo0 - pad, hi = hi0 + pad, W = hist.width, left = 4, right = W - 4;
    const x = (v) => left + (v - lo) / (hi - lo) * (right - left);
    const value = (px) => lo + (px - left) / (right - left) * (hi - lo);
    return { h, row, x, value, lo: lo0, hi: hi0 };  // labels: the data's range, unpadded
  }
  function drawHist() {
    const width = Math.max(200, Math.floor(list.clientWidth || panel.clientWidth || 400));
    if (hist.width !== width) hist.width = width;
    const W = hist.width, H = hist.height, g = histGeometry();
    hctx.clearRect(0, 0, W, H);
    if (!g) { hist.setAttribute("aria-label", "histogram: none stored"); return; }
    const { h, row, x } = g;
    const top = 16, bottom = H - 14, peak = Math.log10(1 + Math.max(1, ...h.counts));
    hctx.fillStyle = "#888";
    for (let i = 0; i < h.counts.length; i++) {
      if (!h.counts[i]) continue;
      const x0 = x(h.edges[i]), x1 = Math.max(x0 + 1, x(h.edges[i + 1]));
      const y = bottom - (bottom - top) * Math.log10(1 + h.counts[i]) / peak;
      hctx.fillRect(x0, y, x1 - x0, bottom - y);
    }
    const start = histDrag && histDrag.edge === "start" ? histDrag.value : row.start;
    const end = histDrag && histDrag.edge === "end" ? histDrag.value : row.end;
    const colour = `#${row.color || "3A7BD5"}`;
    hctx.globalAlpha = 0.2; hctx.fillStyle = colour;
    hctx.fillRect(x(start), top, x(end) - x(start), bottom - top);
    hctx.globalAlpha = 1; hctx.fillStyle = colour;
    hctx.fillRect(x(start) - 1, top, 3, bottom - top);
    hctx.fillRect(x(end) - 1, top, 3, bottom - top);
    hist.dataset.startX = x(start).toFixed(1);  // where the edges are (tests, tools)
    hist.dataset.endX = x(end).toFixed(1);
    hctx.fillStyle = getComputedStyle(root).color || "#222";
    hctx.font = "11px sans-serif"; hctx.textAlign = "left";
    hctx.fillText(`${h.title}  window ${+start.toPrecision(6)} – ${+end.toPrecision(6)}`, 4, 11);
    hctx.fillText(String(+g.lo.toPrecision(4)), 4, H - 2);
    hctx.textAlign = "right"; hctx.fillText(String(+g.hi.toPrecision(4)), W - 4, H - 2);
    hist.setAttribute("aria-label", `histogram of ${h.title}, log counts, window `
                      + `${+start.toPrecision(6)} to ${+end.toPrecision(6)}`);
  }
  const histX = (e) => e.clientX - hist.getBoundingClientRect().left;
  hist.addEventListener("mousedown", (e) => {
    const g = histGeometry();
    if (!g || model.get("locked")) return;
    const px = histX(e), ds = Math.abs(px - g.x(g.row.start)), de = Math.abs(px - g.x(g.row.end));
    if (Math.min(ds, de) > 8) return;
    histDrag = { edge: ds <= de ? "start" : "end", value: ds <= de ? g.row.start : g.row.end };
    e.preventDefault();
  });
  hist.addEventListener("mousemove", (e) => {
    const g = histGeometry();
    if (!g) return;
    if (!histDrag) {
      const px = histX(e);
      const near = Math.min(Math.abs(px - g.x(g.row.start)), Math.abs(px - g.x(g.row.end))) <= 8;
      hist.style.cursor = near ? "ew-resize" : "default";
      return;
    }
    histDrag.value = g.value(histX(e));
    drawHist();
  });
  window.addEventListener("mouseup", () => {
    if (!histDrag) return;
    const g = histGeometry(), d = histDrag;
    histDrag = null;
    if (!g) return;
    const integer = /int/.test(info().dtype || "");
    const v = integer ? Math.round(d.value) : +d.value.toPrecision(6);
    const start = d.edge === "start" ? v : g.row.start, end = d.edge === "end" ? v : g.row.end;
    op("set_window", { index: g.row.index, start: Math.min(start, end), end: Math.max(start, end) });
    drawHist();
  });
  if (typeof ResizeObserver !== "undefined") new ResizeObserver(() => drawHist()).observe(panel);

  let shownMsg = "";  // the kernel's last message: cleared once an operation succeeds
  let shownName = null;
  function drawStatus() {
    lockBox.checked = model.get("locked");
    dirtyMark.textContent = model.get("dirty") ? "● modified" : "";
    // the name field follows the kernel's preset name when that changes, never on every
    // redraw: a name typed for a save that was refused (no reason) must stay for the retry
    const name = model.get("preset_name");
    if (document.activeElement !== nameIn && name !== shownName) nameIn.value = shownName = name;
    toolbar.querySelector(".plexhub-undo").disabled = !model.get("can_undo") || model.get("locked");
    const msg = model.get("message");
    if (msg) status.textContent = shownMsg = msg;
    else if (shownMsg && status.textContent === shownMsg) status.textContent = shownMsg = "";
  }

  function drawPresets() {
    const items = model.get("preset_list");
    presetSel.replaceChildren(el("option", { value: "" }, "— presets —"),
      ...items.map((p) => el("option", { value: p.ref, selected: p.ref === model.get("preset_ref") }, p.label)));
  }

  model.on("change:rows", () => { drawRows(); drawHist(); });
  model.on("change:locked", () => { drawRows(); drawStatus(); });
  model.on("change:focus", drawRows);
  model.on("change:histogram", drawHist);
  for (const k of ["dirty", "can_undo", "message", "preset_name"]) model.on(`change:${k}`, drawStatus);
  model.on("change:preset_list", drawPresets);
  model.on("change:preset_ref", drawPresets);
  drawRows(); drawStatus(); drawPresets(); drawHist(); redraw();
}

export default { render };
