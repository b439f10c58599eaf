/* One background request for a live part of a page (health widget, plan status): fetches the
   server-rendered partial at `url`, never from a cache, marked as a background poll so it does
   not keep an idle session alive. Rejects when the portal is unreachable, answers an error, or
   redirects (the session ended and it sends to the login page). Loaded before the scripts that
   use it. */
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
