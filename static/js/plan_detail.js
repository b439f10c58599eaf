/* Keeps the plan page's status, history and attempts current while the plan is on its way to
   MINT: every 2 s it fetches the server-rendered partial (plans:plan_status) and swaps it in,
   until the plan reaches a final state. Without this file the page is simply static. */
(function () {
  "use strict";

  var INTERVAL_MS = 2000;
  var MAX_INTERVAL_MS = 30000;
  var PARTS = ["plan-status-bar", "plan-activity"];

  var root = document.getElementById("plan-detail");
  if (!root || !window.portalPoll || !window.fetch || !window.DOMParser) {
    return;
  }
  var url = root.getAttribute("data-status-url");
  var delay = INTERVAL_MS;
  var timer = null;
  var inFlight = false;

  function isFinal() {
    return root.getAttribute("data-final") === "true";
  }

  // Which <details> (exact request JSON) the reader has open, so a refresh does not close them.
  function openDetails() {
    var ids = [];
    root.querySelectorAll("details[open][id]").forEach(function (el) {
      ids.push(el.id);
    });
    return ids;
  }

  function swap(html) {
    var open = openDetails();
    var focusedId = document.activeElement && document.activeElement.id;
    var live = window.portalSwap(html, PARTS).getElementById("plan-live");
    if (!live) {
      return;
    }
    open.forEach(function (id) {
      var el = document.getElementById(id);
      if (el) {
        el.open = true;
      }
    });
    if (focusedId) {
      var again = document.getElementById(focusedId);
      if (again) {
        again.focus();
      }
    }
    root.setAttribute("data-final", live.getAttribute("data-final"));
  }

  function schedule() {
    if (timer === null && !inFlight && !isFinal() && !document.hidden) {
      timer = window.setTimeout(poll, delay);
    }
  }

  function poll() {
    timer = null;
    inFlight = true;
    window
      .portalPoll(url)
      .then(function (html) {
        swap(html);
        delay = INTERVAL_MS;
      })
      .catch(function () {
        // Portal unreachable or session ended: back off instead of hammering it.
        delay = Math.min(delay * 2, MAX_INTERVAL_MS);
      })
      .then(function () {
        inFlight = false;
        schedule();
      });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      if (timer !== null) {
        window.clearTimeout(timer);
        timer = null;
      }
    } else {
      delay = INTERVAL_MS;
      schedule();
    }
  });

  schedule();
})();
