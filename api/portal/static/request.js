/* The portal pages' one way to call the API (the pages that write load it before their own
   scripts: image.html, review.html): a JSON body, the session's CSRF token from the page's
   <meta name="csrf-token"> (X-Plexhub-CSRF), an optional reason for change
   (X-Plexhub-Reason), and the API's `detail` as the error of a refused call. */
(function () {
  "use strict";
  window.plexhubRequest = function (method, url, body, reason) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    var h = { "Content-Type": "application/json" };
    if (meta) { h["X-Plexhub-CSRF"] = meta.content; }
    if (reason) { h["X-Plexhub-Reason"] = encodeURIComponent(reason); }
    return fetch(url, { method: method, credentials: "same-origin", headers: h,
      body: body ? JSON.stringify(body) : undefined })
      .then(function (r) {
        return r.json().then(function (doc) {
          if (!r.ok) { throw new Error(doc.detail || ("HTTP " + r.status)); }
          return doc;
        });
      });
  };
})();
