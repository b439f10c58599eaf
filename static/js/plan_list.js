/* Keeps the plan list's states current while a row is on its way to MINT: every 5 s it fetches
   the same page as a background poll and swaps in the results and the count, until no row is
   pending. It leaves the list alone while a draft is ticked or focus is inside it, so a refresh
   never undoes what the dispatcher is doing. Without this file the list is simply static. */
(function () {
  "use strict";

  var INTERVAL_MS = 5000;
  var MAX_INTERVAL_MS = 60000;
  var PARTS = ["plan-count", "plan-results"];
  var delay = INTERVAL_MS;

  function results() {
    return document.getElementById("plan-results");
  }

  if (!results() || !window.portalPoll || !window.fetch || !window.DOMParser) {
    return;
  }

  function busy(region) {
    return (
      region.querySelector('input[type="checkbox"]:checked') !== null ||
      region.contains(document.activeElement)
    );
  }

  function live() {
    var region = results();
    return region && region.getAttribute("data-live") === "true";
  }

  function poll() {
    if (!live()) {
      return;
    }
    if (document.hidden || busy(results())) {
      window.setTimeout(poll, delay);
      return;
    }
    window
      .portalPoll(window.location.href)
      .then(function (html) {
        if (busy(results())) {
          return;
        }
        window.portalSwap(html, PARTS);
        delay = INTERVAL_MS;
      })
      .catch(function () {
        delay = Math.min(delay * 2, MAX_INTERVAL_MS);
      })
      .then(function () {
        window.setTimeout(poll, delay);
      });
  }

  window.setTimeout(poll, delay);
})();
