/* The live parts of the portal's pages (health widget, plan list, plan status), shared by the
   scripts that keep them current; loaded before them.

   portalPoll(url): one background request for a server-rendered page or partial, never from a
   cache, marked as a background poll so it does not keep an idle session alive. Rejects when
   the portal is unreachable, answers an error, or redirects (the session ended and it sends to
   the login page).

   portalSwap(html, ids): puts the elements with these ids from `html` in place of the page's
   own (an id missing on either side is left alone) and returns the parsed document. */
window.portalPoll = function (url) {
  "use strict";
  return fetch(url, {
    credentials: "same-origin",
    headers: { "X-Portal-Poll": "1" },
    cache: "no-store",
  }).then(function (response) {
    if (response.redirected || !response.ok) {
      throw new Error("status " + response.status);
    }
    return response.text();
  });
};

window.portalSwap = function (html, ids) {
  "use strict";
  var doc = new DOMParser().parseFromString(html, "text/html");
  ids.forEach(function (id) {
    var fresh = doc.getElementById(id);
    var now = document.getElementById(id);
    if (fresh && now) {
      now.replaceWith(document.importNode(fresh, true));
    }
  });
  return doc;
};
