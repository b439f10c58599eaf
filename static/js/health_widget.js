/* Keeps the header's MINT health widget, the "no worker" banner and (on the dashboard) the
   operations panel current: every 10 s it fetches them, server-rendered (plans:mint_health),
   and swaps them in. The request is marked as a background poll so it
   does not keep an idle session alive. Without this file the widget shows the state at load. */
(function () {
  "use strict";

  var first = document.getElementById("health-widget");
  var INTERVAL_MS = (first && parseInt(first.getAttribute("data-interval"), 10)) || 10000;
  var MAX_INTERVAL_MS = 60000;
  var delay = INTERVAL_MS;

  function widget() {
    return document.getElementById("health-widget");
  }

  function refresh() {
    var current = widget();
    if (!current || !window.portalPoll || !window.fetch || !window.DOMParser) {
      return;
    }
    if (document.hidden) {
      window.setTimeout(refresh, delay);
      return;
    }
    var panel = document.getElementById("operations-panel");
    var url = current.getAttribute("data-url") + (panel ? "?panel=operations" : "");
    window
      .portalPoll(url)
      .then(function (html) {
        window.portalSwap(html, ["health-widget", "worker-banner", "operations-panel"]);
        delay = INTERVAL_MS;
      })
      .catch(function () {
        delay = Math.min(delay * 2, MAX_INTERVAL_MS);
      })
      .then(function () {
        window.setTimeout(refresh, delay);
      });
  }

  window.setTimeout(refresh, delay);
})();
