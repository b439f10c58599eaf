/* Plan form helpers. The form works without this file; with it:
   - only the fields of the chosen target (Range / Charge) are shown, and the other target's
     fields are disabled so they are not sent;
   - "≈ X kWh" appears when a range and a consumption are both filled in;
   - each local time shows its UTC equivalent in the chosen site's zone, and warns when the time
     falls into a daylight-saving gap or overlap (the server refuses those too). */
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  var form = document.querySelector(".plan-form");
  if (!form) {
    return;
  }

  // --- target: range XOR charge -------------------------------------------------------------

  var radios = form.querySelectorAll('input[name="target_kind"]');
  var groups = form.querySelectorAll(".target-group");
  var prompt = document.getElementById("target-prompt");

  function chosenTarget() {
    for (var i = 0; i < radios.length; i++) {
      if (radios[i].checked) {
        return radios[i].value;
      }
    }
    return "";
  }

  function showTarget() {
    var chosen = chosenTarget();
    groups.forEach(function (group) {
      var active = group.getAttribute("data-target") === chosen;
      group.hidden = !active;
      group.disabled = !active;
    });
    if (prompt) {
      prompt.hidden = chosen !== "";
    }
    updateEstimate();
  }

  radios.forEach(function (radio) {
    radio.addEventListener("change", showTarget);
  });

  // --- vehicle: fills site and consumption; kWh <-> km both ways ------------------------------

  var vehicles = {};
  var vehiclesElement = document.getElementById("vehicle-facts");
  if (vehiclesElement) {
    try {
      vehicles = JSON.parse(vehiclesElement.textContent);
    } catch (e) {
      vehicles = {};
    }
  }
  var vehicleSelect = document.getElementById("id_vehicle");
  var rangeInput = document.getElementById("id_expected_range_km");
  var consumptionInput = document.getElementById("id_average_consumption");
  var chargeInput = document.getElementById("id_expected_charge_kwh");
  var estimate = document.getElementById("energy-estimate");
  var rangeEstimate = document.getElementById("range-estimate");

  function chosenVehicle() {
    return vehicleSelect ? vehicles[vehicleSelect.value] : undefined;
  }

  function number(text) {
    return parseFloat(String(text || "").replace(",", "."));
  }

  function round(value) {
    return value.toLocaleString("en-GB", { maximumFractionDigits: 0 });
  }

  function batteryNote(kwh, vehicle) {
    if (vehicle && kwh > number(vehicle.battery)) {
      return " — more than " + vehicle.name + "'s " + round(number(vehicle.battery)) + " kWh battery";
    }
    return "";
  }

  function updateEstimate() {
    var vehicle = chosenVehicle();
    if (estimate && rangeInput && consumptionInput) {
      var range = number(rangeInput.value);
      var consumption = number(consumptionInput.value);
      var fromVehicle = !(consumption > 0) && vehicle;
      if (fromVehicle) {
        consumption = number(vehicle.consumption);
      }
      if (chosenTarget() === "range" && range > 0 && consumption > 0) {
        var kwh = (range * consumption) / 100;
        estimate.textContent =
          "Estimated energy: ≈ " +
          kwh.toLocaleString("en-GB", { maximumFractionDigits: 1 }) +
          " kWh" +
          (fromVehicle ? " at " + vehicle.name + "'s " + consumption + " kWh/100 km" : "") +
          batteryNote(kwh, vehicle);
      } else {
        estimate.textContent = "";
      }
    }
    if (rangeEstimate && chargeInput) {
      var charge = number(chargeInput.value);
      if (chosenTarget() === "charge" && charge > 0 && vehicle) {
        var perHundred = number(vehicle.consumption);
        var battery = number(vehicle.battery);
        // No more than the battery holds can be driven on.
        var usable = Math.min(charge, battery);
        rangeEstimate.textContent =
          "Enough for ≈ " +
          round((usable * 100) / perHundred) +
          " km at " +
          vehicle.name +
          "'s " +
          perHundred +
          " kWh/100 km" +
          (charge > battery ? " (a full battery)" : "") +
          batteryNote(charge, vehicle);
      } else {
        rangeEstimate.textContent = "";
      }
    }
  }

  [rangeInput, consumptionInput, chargeInput].forEach(function (input) {
    if (input) {
      input.addEventListener("input", updateEstimate);
    }
  });

  // The consumption this script filled in: replaced when another vehicle is picked, unless
  // the dispatcher has typed their own since.
  var filledConsumption = null;
  // Likewise the site: a site the dispatcher chose by hand is left alone.
  var filledSite = null;

  if (vehicleSelect) {
    vehicleSelect.addEventListener("change", function () {
      var vehicle = chosenVehicle();
      if (vehicle) {
        var site = document.getElementById("id_location");
        var offered = site && site.querySelector('option[value="' + vehicle.site + '"]');
        var untouched = site && (!site.value || site.value === filledSite);
        if (offered && untouched && site.value !== vehicle.site) {
          site.value = vehicle.site;
          filledSite = vehicle.site;
          site.dispatchEvent(new Event("change"));
        }
        if (
          consumptionInput &&
          (!consumptionInput.value || consumptionInput.value === filledConsumption)
        ) {
          consumptionInput.value = String(number(vehicle.consumption));
          filledConsumption = consumptionInput.value;
        }
      }
      updateEstimate();
    });
  }

  // --- local time → UTC in the site's zone --------------------------------------------------

  var zones = {};
  var zonesElement = document.getElementById("site-zones");
  if (zonesElement) {
    try {
      zones = JSON.parse(zonesElement.textContent);
    } catch (e) {
      zones = {};
    }
  }
  var locationSelect = document.getElementById("id_location");
  var zoneHint = document.getElementById("zone-hint");
  var formatters = {};

  function formatter(zone) {
    if (!formatters[zone]) {
      formatters[zone] = new Intl.DateTimeFormat("en-US", {
        timeZone: zone,
        hourCycle: "h23",
        year: "numeric",
        month: "2-digit",
        day: "2-digit",
        hour: "2-digit",
        minute: "2-digit",
        second: "2-digit",
      });
    }
    return formatters[zone];
  }

  // Milliseconds to add to a UTC instant to get the wall clock in `zone` at that instant.
  function offsetAt(instant, zone) {
    var parts = {};
    formatter(zone)
      .formatToParts(new Date(instant))
      .forEach(function (part) {
        parts[part.type] = part.value;
      });
    var wall = Date.UTC(
      Number(parts.year),
      Number(parts.month) - 1,
      Number(parts.day),
      Number(parts.hour) % 24,
      Number(parts.minute),
      Number(parts.second)
    );
    return wall - Math.floor(instant / 1000) * 1000;
  }

  // Every UTC instant whose wall clock in `zone` reads `wallMs`: none in a DST gap, two in an
  // overlap, otherwise one. Zones change offset at most once within a day either side.
  function instantsFor(wallMs, zone) {
    var offsets = [-86400000, 0, 86400000].map(function (shift) {
      return offsetAt(wallMs + shift, zone);
    });
    var found = [];
    offsets.forEach(function (offset) {
      var candidate = wallMs - offset;
      if (offsetAt(candidate, zone) === offset && found.indexOf(candidate) === -1) {
        found.push(candidate);
      }
    });
    return found.sort(function (a, b) {
      return a - b;
    });
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function utcText(instant) {
    var d = new Date(instant);
    return (
      d.getUTCFullYear() +
      "-" +
      pad(d.getUTCMonth() + 1) +
      "-" +
      pad(d.getUTCDate()) +
      " " +
      pad(d.getUTCHours()) +
      ":" +
      pad(d.getUTCMinutes()) +
      " UTC"
    );
  }

  // "UTC+01:00": the site clock's offset at that instant (Intl's short zone names vary by locale).
  function offsetText(instant, zone) {
    var minutes = Math.round(offsetAt(instant, zone) / 60000);
    var sign = minutes < 0 ? "−" : "+";
    minutes = Math.abs(minutes);
    return "UTC" + sign + pad(Math.floor(minutes / 60)) + ":" + pad(minutes % 60);
  }

  function selectedZone() {
    if (!locationSelect || !locationSelect.value) {
      return "";
    }
    return zones[locationSelect.value] || "";
  }

  function updateUtc(input) {
    var hint = document.querySelector('[data-utc-for="' + input.id + '"]');
    if (!hint) {
      return;
    }
    hint.classList.remove("utc-hint-problem");
    var zone = selectedZone();
    var match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(input.value);
    if (!match) {
      hint.textContent = "";
      return;
    }
    if (!zone) {
      hint.textContent = "Choose a site to see this time in UTC.";
      return;
    }
    // The server's rule too: a two-digit year typed as "26" arrives here as 0026.
    if (Math.abs(+match[1] - new Date().getFullYear()) > 1) {
      hint.classList.add("utc-hint-problem");
      hint.textContent =
        "Check the year: " + match[1] + " is too far from today.";
      return;
    }
    var wallMs = Date.UTC(+match[1], +match[2] - 1, +match[3], +match[4], +match[5]);
    var instants;
    try {
      instants = instantsFor(wallMs, zone);
    } catch (e) {
      hint.textContent = "";
      return;
    }
    if (instants.length === 1) {
      hint.textContent =
        "= " + utcText(instants[0]) + " · site clock " + offsetText(instants[0], zone);
    } else if (instants.length === 0) {
      hint.classList.add("utc-hint-problem");
      hint.textContent =
        "This time does not exist in " + zone + ": the clocks jump forward then.";
    } else {
      hint.classList.add("utc-hint-problem");
      hint.textContent =
        "This time happens twice in " + zone + ": the clocks go back then.";
    }
  }

  var timeInputs = [
    document.getElementById("id_start_local"),
    document.getElementById("id_end_local"),
  ].filter(Boolean);

  function updateAllTimes() {
    timeInputs.forEach(updateUtc);
    if (zoneHint) {
      var zone = selectedZone();
      zoneHint.textContent = zone
        ? "Times are on the clock of the site: " + zone + ". UTC is shown under each time."
        : "Choose a site: times are typed on the site's own clock.";
    }
  }

  timeInputs.forEach(function (input) {
    input.addEventListener("input", function () {
      updateUtc(input);
    });
    input.addEventListener("change", function () {
      updateUtc(input);
    });
  });
  if (locationSelect) {
    locationSelect.addEventListener("change", updateAllTimes);
  }

  // The fields' state when a page with errors comes back from the server.
  showTarget();
  updateAllTimes();
  var summary = document.getElementById("error-summary");
  if (summary) {
    summary.focus();
  }
})();
