/* Saved views on the viewer page (issue 19).

   "Save my view" keeps the reader's current view of the image (the preset version it
   started from, the channel settings c= and the viewport, as viewer.js writes them into the
   page's URL) under a name: POST /api/v1/images/{id}/views. It is the reader's own: listed
   for them only ("My views"), reopened at /portal/views/{view_id}; no preset changes.

   Staff (presets:write) can instead "Save as preset": the current channel settings become
   a preset of the image (POST /api/v1/images/{id}/presets; the same name again makes its
   next version), with the reason for change the study's profile asks for
   (X-Plexhub-Reason). The page then opens with the new version. Writes send the CSRF token. */
(function () {
  "use strict";
  var box = document.getElementById("views");
  if (!box) { return; }
  var api = box.dataset.api;
  var status = document.getElementById("views-status");
  var nameInput = document.getElementById("view-name");

  function say(text, bad) {
    status.textContent = text;
    status.classList.toggle("error", !!bad);
  }

  function post(path, body, reason) {
    return window.plexhubRequest("POST", api + path, body, reason);
  }

  function currentView() {
    var view = window.plexhubView;
    if (view && view.writeUrl) { view.writeUrl(); }
    var q = new URLSearchParams(window.location.search);
    var out = { preset: q.get("preset") || "", c: q.get("c") || "" };
    ["x", "y", "zoom"].forEach(function (k) {
      var v = parseFloat(q.get(k));
      if (isFinite(v)) { out[k] = v; }
    });
    return out;
  }

  function name() {
    var text = nameInput.value.trim();
    if (!text) { say("Give it a name first", true); nameInput.focus(); }
    return text;
  }

  var picker = document.getElementById("my-views");
  picker.addEventListener("change", function () {
    if (picker.value) { window.location.assign(picker.value); }
  });

  document.getElementById("save-view").addEventListener("click", function () {
    var text = name();
    if (!text) { return; }
    var body = currentView();
    body.name = text;
    post("/views", body).then(function (doc) {
      var existing = Array.prototype.find.call(picker.options, function (o) {
        return o.value === doc.url;
      });
      if (!existing) {
        var o = document.createElement("option");
        o.value = doc.url; o.textContent = doc.name;
        picker.appendChild(o);
        picker.options[0].textContent = "choose a saved view";
      }
      say("View \u201c" + doc.name + "\u201d saved (yours only; the preset is unchanged)");
      box.dataset.saved = doc.url;
    }).catch(function (e) { say("Not saved: " + e.message, true); });
  });

  var presetBtn = document.getElementById("save-preset");
  if (presetBtn) {
    presetBtn.addEventListener("click", function () {
      var text = name();
      var view = window.plexhubView;
      if (!text || !view || !view.specDocument) { return; }
      var reasonInput = document.getElementById("preset-reason");
      var reason = reasonInput ? reasonInput.value.trim() : "";
      if (box.dataset.reason && !reason) {
        say("This study asks for a reason for the change", true);
        reasonInput.focus();
        return;
      }
      var doc = view.specDocument();
      doc.name = text;
      post("/presets", doc, reason).then(function (saved) {
        say("Preset \u201c" + text + "\u201d saved as version " + saved.version);
        var q = new URLSearchParams(window.location.search);
        ["c", "preset"].forEach(function (k) { q.delete(k); });
        q.set("preset", saved.id + "@" + saved.version);
        window.location.assign(window.location.pathname + "?" + q.toString());
      }).catch(function (e) { say("Not saved: " + e.message, true); });
    });
  }
}());
