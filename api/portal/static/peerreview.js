/* The peer-review page (issue 19): the study's slides with the primary pathologist's
   findings; the peer reviewer agrees or disagrees with each (with a comment) and completes
   each slide; open disagreements are listed, the primary revises the finding or the peer
   agrees; both sign off with their password (an electronic signature).

   Reads GET {api}/studies/{code}/review and writes through the review API with the page's
   CSRF token. No inline script: the page's CSP allows only 'self'. */
(function () {
  "use strict";
  var root = document.getElementById("peer-review");
  if (!root) { return; }
  var api = root.dataset.api;
  var code = root.dataset.study;
  var role = root.dataset.role;
  var status = document.getElementById("pr-status");
  var grades = {};
  var state = null;

  function say(text, bad) {
    status.textContent = text;
    status.classList.toggle("error", !!bad);
  }

  function call(method, path, body) {
    return window.plexhubRequest(method, api + path, body);
  }

  function reason() { return document.getElementById("pr-reason").value.trim(); }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function grade(n) { return n + (grades[n] ? " · " + grades[n] : ""); }

  function describe(f) {
    return f.tissue + ": " + f.term + ", grade " + grade(f.severity);
  }

  var STATES = { not_reviewed: "not reviewed", primary_done: "primary done",
    peer_reviewed: "peer reviewed", signed_off: "signed off" };

  function verdictCell(td, f, locked) {
    var r = f.review;
    if (r) {
      var v = r.revised_since
        ? el("span", { "class": "verdict-old" }, r.verdict + "d with v" + r.finding_version)
        : el("span", { "class": "verdict-" + r.verdict }, r.verdict);
      td.appendChild(v);
      if (r.comment) { td.appendChild(document.createTextNode(" · " + r.comment)); }
      if (r.revised_since) { td.appendChild(document.createTextNode(" (revised since)")); }
    } else {
      td.appendChild(el("span", { "class": "empty" }, "no verdict yet"));
    }
    if (role !== "peer" || locked) { return; }
    var form = el("div", { "class": "verdict-form", role: "group",
      "aria-label": "Verdict on " + describe(f) });
    var label = el("label", {}, "Comment");
    var comment = el("input", { type: "text", maxlength: "5000",
      "aria-label": "Comment on " + describe(f) });
    label.appendChild(comment);
    form.appendChild(label);
    ["agree", "disagree"].forEach(function (verdict) {
      var b = el("button", { type: "button", "data-verdict": verdict },
        verdict === "agree" ? "Agree" : "Disagree");
      b.addEventListener("click", function () {
        call("POST", "/images/" + f.image_id + "/verdicts", { finding: f.id, verdict: verdict,
          comment: comment.value.trim(), reason: reason() })
          .then(function () { say("Verdict recorded: " + verdict); return load(); })
          .catch(function (e) { say("Not recorded: " + e.message, true); });
      });
      form.appendChild(b);
    });
    td.appendChild(form);
  }

  function slide(s, locked) {
    var box = el("section", { "class": "slide", "data-image": s.id,
      "aria-label": "Slide " + (s.name || s.id) });
    var head = el("header");
    head.appendChild(el("h3", {}, s.name || s.id));
    head.appendChild(el("span", { "class": "state " + s.review_state,
      "data-state": s.review_state }, STATES[s.review_state] || s.review_state));
    if (s.retired) {  // kept for its findings, no longer viewed or read (issue 14)
      box.setAttribute("data-retired", "true");
      head.appendChild(el("span", { "class": "retired" }, "retired"));
    } else {
      head.appendChild(el("a", { href: root.dataset.viewer + s.id }, "open in the viewer"));
    }
    var can = !locked && !s.retired && ((role === "primary" && s.review_state === "not_reviewed") ||
      (role === "peer" && s.review_state === "primary_done"));
    if (can) {
      var done = el("button", { type: "button", "class": "complete" },
        role === "primary" ? "Complete my read of this slide" : "Complete peer review of this slide");
      done.addEventListener("click", function () {
        call("POST", "/images/" + s.id + "/review/complete", { reason: reason() })
          .then(function () { say("Slide completed"); return load(); })
          .catch(function (e) { say("Not completed: " + e.message, true); });
      });
      head.appendChild(done);
    }
    box.appendChild(head);
    if (!s.findings.length) {
      box.appendChild(el("p", { "class": "empty" }, "No findings recorded on this slide."));
      return box;
    }
    var table = el("table", { "class": "findings" });
    var hr = el("tr");
    ["Organ", "Finding", "Grade", "Distribution", "Comment", "Pathologist", "Peer review"]
      .forEach(function (h) { hr.appendChild(el("th", { scope: "col" }, h)); });
    table.appendChild(hr);
    s.findings.forEach(function (f) {
      f.image_id = s.id;
      var tr = el("tr", { "data-finding": f.id });
      [f.tissue, f.term, grade(f.severity), f.distribution || "—", f.text || "—",
        f.author + " (v" + f.version + ")"].forEach(function (t) {
        tr.appendChild(el("td", {}, String(t)));
      });
      var td = el("td");
      verdictCell(td, f, locked);
      tr.appendChild(td);
      table.appendChild(tr);
    });
    box.appendChild(table);
    return box;
  }

  function disagreement(d, byId) {
    var f = byId[d.id];
    var li = el("li", { "data-finding": d.id });
    li.appendChild(el("span", {}, describe(d) + " — peer: " + (d.comment || "no comment")));
    if (role === "primary") {
      var label = el("label", {}, "New grade");
      var sel = el("select", { "aria-label": "New grade for " + describe(d) });
      Object.keys(grades).forEach(function (k) {
        var o = el("option", { value: k }, grade(k));
        if (String(k) === String(d.severity)) { o.selected = true; }
        sel.appendChild(o);
      });
      label.appendChild(sel);
      li.appendChild(label);
      var b = el("button", { type: "button", "class": "revise" }, "Revise finding");
      b.addEventListener("click", function () {
        call("POST", "/images/" + d.image_id + "/findings", { id: d.id, tissue: f.tissue,
          term: f.term, severity: parseInt(sel.value, 10), distribution: f.distribution,
          text: f.text, annotations: f.annotations || [], reason: reason() })
          .then(function () { say("Finding revised"); return load(); })
          .catch(function (e) { say("Not revised: " + e.message, true); });
      });
      li.appendChild(b);
    } else if (role === "peer") {
      var a = el("button", { type: "button", "class": "agree-now" }, "Change to agree");
      a.addEventListener("click", function () {
        call("POST", "/images/" + d.image_id + "/verdicts", { finding: d.id, verdict: "agree",
          comment: "agreed after discussion", reason: reason() })
          .then(function () { say("Verdict changed to agree"); return load(); })
          .catch(function (e) { say("Not changed: " + e.message, true); });
      });
      li.appendChild(a);
    }
    return li;
  }

  function render(doc) {
    state = doc;
    var locked = !!doc.locked_at;
    document.getElementById("review-loading").hidden = true;
    document.getElementById("primary").textContent = doc.primary || "not assigned";
    document.getElementById("peer").textContent = doc.peer || "not assigned";
    document.getElementById("lock-state").textContent = locked
      ? "signed off and locked (" + doc.locked_at.slice(0, 16).replace("T", " ") + " UTC)"
      : "open: " + doc.disagreements.length + " disagreement(s), " + doc.unjudged +
        " finding(s) without a verdict";
    var byId = {};
    doc.slides.forEach(function (s) {
      s.findings.forEach(function (f) { byId[f.id] = f; });
    });
    var list = document.getElementById("disagreements");
    list.textContent = "";
    doc.disagreements.forEach(function (d) { list.appendChild(disagreement(d, byId)); });
    document.getElementById("no-disagreements").hidden = doc.disagreements.length > 0;
    var slides = document.getElementById("slides");
    slides.textContent = "";
    doc.slides.forEach(function (s) { slides.appendChild(slide(s, locked)); });
    if (!doc.slides.length) {
      slides.appendChild(el("p", { "class": "empty" }, "No slides in this study yet."));
    }
    var signs = document.getElementById("signoffs");
    signs.textContent = "";
    ["primary", "peer"].forEach(function (r) {
      var s = doc.signoffs[r];
      signs.appendChild(el("li", { "data-role": r }, s
        ? s.signer + " signed as " + (r === "primary" ? "primary pathologist" : "peer reviewer") +
          " (" + s.meaning + ", " + s.signed_at.slice(0, 16).replace("T", " ") + " UTC)"
        : (r === "primary" ? "Primary pathologist" : "Peer reviewer") + ": not signed yet"));
    });
    var form = document.getElementById("signoff-form");
    form.hidden = locked || !role || !!doc.signoffs[role];
    document.getElementById("signoff-meaning").textContent = role === "primary"
      ? "Sign the findings off as primary pathologist (meaning: approved)."
      : "Sign the findings off as peer reviewer (meaning: reviewed).";
  }

  function load() {
    return call("GET", "/studies/" + encodeURIComponent(code) + "/review")
      .then(render)
      .catch(function (e) { say("The review could not be loaded: " + e.message, true); });
  }

  document.getElementById("signoff-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var cred = document.getElementById("signoff-credential");
    call("POST", "/studies/" + encodeURIComponent(code) + "/review/signoff",
      { credential: cred.value, reason: reason() })
      .then(function (doc) { cred.value = ""; say("Signed off"); render(doc); })
      .catch(function (e) { cred.value = ""; say("Not signed: " + e.message, true); });
  });

  var assign = document.getElementById("assign-form");
  if (assign) {
    assign.addEventListener("submit", function (ev) {
      ev.preventDefault();
      call("PUT", "/studies/" + encodeURIComponent(code) + "/review", {
        primary: document.getElementById("assign-primary").value.trim(),
        peer: document.getElementById("assign-peer").value.trim(), reason: reason() })
        .then(function (doc) { say("Pathologists assigned"); render(doc); })
        .catch(function (e) { say("Not assigned: " + e.message, true); });
    });
  }

  fetch(api + "/findings/vocabulary", { credentials: "same-origin" })
    .then(function (r) { return r.json(); })
    .then(function (v) { grades = v.severity || {}; })
    .catch(function () { grades = {}; })
    .then(load);
}());
