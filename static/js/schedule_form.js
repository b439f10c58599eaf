/* Schedule form helpers. The form works without this file (its Preview button posts the whole
   page); with it:
   - picking a vehicle fills in its home site;
   - the preview of the next arrivals (site time, UTC, DST nights, what the guards say) follows
     what is typed, fetched from the server, which alone works out occurrences. */
(function () {
  "use strict";

  var form = document.querySelector(".schedule-form");
  if (!form) {
    return;
  }

  var vehicles = {};
  var facts = document.getElementById("vehicle-facts");
  if (facts) {
    try {
      vehicles = JSON.parse(facts.textContent);
    } catch (e) {
      vehicles = {};
    }
  }
  var vehicleSelect = document.getElementById("id_vehicle");
  var siteSelect = document.getElementById("id_location");
  if (vehicleSelect && siteSelect) {
    vehicleSelect.addEventListener("change", function () {
      var vehicle = vehicles[vehicleSelect.value];
      // Only a site the list offers (an inactive home site is not one).
      var offered = vehicle && siteSelect.querySelector('option[value="' + vehicle.site + '"]');
      if (offered && siteSelect.value !== vehicle.site) {
        siteSelect.value = vehicle.site;
      }
    });
  }

  var url = form.getAttribute("data-preview-url");
  var timer = null;
  var asked = 0;

  function refresh() {
    var mine = ++asked;
    var data = new FormData(form);
    data.delete("action");
    fetch(url, {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { "X-Portal-Poll": "1" },
      cache: "no-store",
    })
      .then(function (response) {
        if (response.redirected || !response.ok) {
          throw new Error("status " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        if (mine === asked) {
          window.portalSwap(html, ["schedule-preview"]);
        }
      })
      .catch(function () {
        /* The Preview button still works; a failed live refresh leaves the last preview. */
      });
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 400);
  }

  form.addEventListener("input", later);
  form.addEventListener("change", later);
})();
