/* Staff compose a guided view (issue 19) from the viewer page: each "Add this view as a
   step" keeps the slide, its preset version, channels (c=) and viewport as viewer.js has
   them in the URL, with a title, a short text and optionally one of the slide's
   annotations. The draft is kept in this tab (sessionStorage, per study), so steps can be
   added slide after slide (n / p); "Publish" sends it as the guide's next version:
   POST /api/v1/studies/{code}/guides, with the reason for change of the review panel. */
(function () {
  "use strict";
  var box = document.getElementById("compose");
  if (!box) { return; }
  var key = "plexhub-guide-" + box.dataset.study;
  var list = document.getElementById("guide-steps");
  var nameInput = document.getElementById("guide-name");
  var annotations = document.getElementById("step-annotation");
  var status = document.getElementById("review-status");

  function say(text, bad) {
    if (status) { status.textContent = text; status.classList.toggle("error", !!bad); }
  }

  function load() {
    try { return JSON.parse(window.sessionStorage.getItem(key) || "null") ||
      { name: "", steps: [] }; } catch (e) { return { name: "", steps: [] }; }
  }
  var draft = load();

  function store() { window.sessionStorage.setItem(key, JSON.stringify(draft)); }

  function show() {
    list.textContent = "";
    draft.steps.forEach(function (w, i) {
      var li = document.createElement("li");
      li.textContent = (w.title || w.text || "step " + (i + 1)) +
        (w.image_id === box.dataset.image ? " (this slide)" : "");
      var drop = document.createElement("button");
      drop.type = "button";
      drop.textContent = "remove";
      drop.setAttribute("aria-label", "Remove step " + (i + 1));
      drop.addEventListener("click", function () {
        draft.steps.splice(i, 1); store(); show();
      });
      li.appendChild(document.createTextNode(" "));
      li.appendChild(drop);
      list.appendChild(li);
    });
  }
  nameInput.value = draft.name;
  nameInput.addEventListener("input", function () { draft.name = nameInput.value; store(); });
  show();

  fetch(box.dataset.api.replace(/studies\/[^/]+\/guides$/, "images/" + box.dataset.image +
    "/annotations"), { credentials: "same-origin" })
    .then(function (r) { return r.json(); })
    .then(function (fc) {
      fc.features.forEach(function (f, i) {
        var o = document.createElement("option");
        o.value = f.id;
        o.textContent = (i + 1) + ". " + f.properties.shape +
          (f.properties["class"] ? " · " + f.properties["class"] : "");
        annotations.appendChild(o);
      });
    });

  document.getElementById("add-step").addEventListener("click", function () {
    var view = window.plexhubView;
    if (view && view.writeUrl) { view.writeUrl(); }
    var q = new URLSearchParams(window.location.search);
    var w = { image_id: box.dataset.image };
    ["preset", "c"].forEach(function (k) { if (q.get(k)) { w[k] = q.get(k); } });
    ["x", "y", "zoom"].forEach(function (k) {
      var v = parseFloat(q.get(k));
      if (isFinite(v) && v >= 0) { w[k] = v; }
    });
    var title = document.getElementById("step-title").value.trim();
    var text = document.getElementById("step-text").value.trim();
    if (title) { w.title = title; }
    if (text) { w.text = text; }
    if (annotations.value) { w.annotation_id = annotations.value; }
    draft.steps.push(w);
    store(); show();
    say("Step " + draft.steps.length + " added");
  });

  document.getElementById("publish-guide").addEventListener("click", function () {
    var name = nameInput.value.trim();
    if (!name || !draft.steps.length) {
      say("Give the guided view a name and at least one step", true);
      return;
    }
    var reason = document.getElementById("review-reason");
    window.plexhubRequest("POST", box.dataset.api, { name: name, waypoints: draft.steps,
      reason: reason ? reason.value.trim() : "" })
      .then(function (doc) {
        draft = { name: "", steps: [] };
        store(); show();
        nameInput.value = "";
        say("Published version " + doc.version + " of \u201c" + doc.name + "\u201d");
        var a = document.createElement("a");
        a.href = box.dataset.portal + doc.id;
        a.id = "published-guide";
        a.textContent = "open it";
        status.appendChild(document.createTextNode(" · "));
        status.appendChild(a);
      })
      .catch(function (e) { say("Not published: " + e.message, true); });
  });
}());
