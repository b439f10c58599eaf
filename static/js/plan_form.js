/* Plan form helpers. The form works without this file; with it:
   - only the fields of the chosen target (Range / Charge) are shown, and the other target's
     fields are disabled so they are not sent;
   - "≈ X kWh" appears when a range and a consumption are both filled in;
   - each local time shows its UTC equivalent in the chosen site's zone, and warns when the time
     falls into a daylight-saving gap or overlap (the server refuses those too);
   - the end says on which day it falls ("Ends the next day: Tue 2 Dec 05:45 CET"). */
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
  // Likewise the site: a site the dispatcher chose by hand is left alone; one the form chose
  // for a new plan (the last site used, data-default) is not a choice and gives way.
  var siteDefault = document.getElementById("id_location");
  var filledSite =
    siteDefault && siteDefault.dataset.default === "true" ? siteDefault.value : null;

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

  // --- date + start + end, typed as text on the site's clock ----------------------------------
  // The server's rules (plans/forms.py): a day is YYYY-MM-DD or DD.MM.YYYY; a time is 24-hour
  // HH:MM (also HH.MM or HHMM); a bare end time earlier than the start is on the next day, and
  // the end may carry its own date for a longer stay.

  var DAY_MS = 86400000;
  var DAY_NAMES = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  var MONTH_NAMES = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
  ];

  function parseDay(text) {
    text = String(text || "").trim();
    var iso = /^(\d{4})-(\d{1,2})-(\d{1,2})$/.exec(text);
    var dotted = /^(\d{1,2})\.(\d{1,2})\.(\d{4})$/.exec(text);
    var y, m, d;
    if (iso) {
      y = +iso[1];
      m = +iso[2];
      d = +iso[3];
    } else if (dotted) {
      y = +dotted[3];
      m = +dotted[2];
      d = +dotted[1];
    } else {
      return null;
    }
    var check = new Date(Date.UTC(2000, m - 1, d));
    check.setUTCFullYear(y);
    if (check.getUTCMonth() !== m - 1 || check.getUTCDate() !== d) {
      return null;
    }
    return { y: y, m: m, d: d };
  }

  function parseTime(text) {
    var match = /^(\d{1,2})[:.]?(\d{2})$/.exec(String(text || "").trim());
    if (!match || +match[1] > 23 || +match[2] > 59) {
      return null;
    }
    return { h: +match[1], min: +match[2] };
  }

  // {day: {y, m, d} or null, time: {h, min}} or null
  function parseEnd(text) {
    var parts = String(text || "").trim().replace("T", " ").split(/\s+/);
    if (parts.length === 1) {
      var time = parseTime(parts[0]);
      return time ? { day: null, time: time } : null;
    }
    if (parts.length === 2) {
      var day = parseDay(parts[0]);
      var at = parseTime(parts[1]);
      return day && at ? { day: day, time: at } : null;
    }
    return null;
  }

  function wallMsOf(day, time) {
    var date = new Date(Date.UTC(2000, day.m - 1, day.d, time.h, time.min));
    date.setUTCFullYear(day.y);
    return date.getTime();
  }

  function yearProblem(day) {
    if (day && Math.abs(day.y - new Date().getFullYear()) > 1) {
      return "Check the year: " + String(day.y).padStart(4, "0") + " is too far from today.";
    }
    return "";
  }

  // "CET", "EST", "GMT" where the zone has such a name; else "UTC+03:00".
  function zoneAbbreviation(instant, zone) {
    var locales = ["en-GB", "en-US"];
    for (var i = 0; i < locales.length; i++) {
      try {
        var options = { timeZone: zone, timeZoneName: "short" };
        var name = new Intl.DateTimeFormat(locales[i], options)
          .formatToParts(new Date(instant))
          .filter(function (part) {
            return part.type === "timeZoneName";
          })[0];
        if (name && /^[A-Z]{2,5}$/.test(name.value)) {
          return name.value;
        }
      } catch (e) {
        break;
      }
    }
    return offsetText(instant, zone);
  }

  // "Tue 2 Dec 05:45" for a wall-clock time held as milliseconds.
  function wallText(wallMs) {
    var d = new Date(wallMs);
    return (
      DAY_NAMES[d.getUTCDay()] +
      " " +
      d.getUTCDate() +
      " " +
      MONTH_NAMES[d.getUTCMonth()] +
      " " +
      pad(d.getUTCHours()) +
      ":" +
      pad(d.getUTCMinutes())
    );
  }

  function showHint(input, text, problem) {
    var hint = input && document.querySelector('[data-utc-for="' + input.id + '"]');
    if (!hint) {
      return;
    }
    hint.classList.toggle("utc-hint-problem", Boolean(problem));
    hint.textContent = text;
  }

  // The UTC line under a time: the instant and the site clock's offset, or why there is none.
  function utcLine(input, wallMs, zone) {
    if (!zone) {
      showHint(input, "Choose a site to see this time in UTC.", false);
      return null;
    }
    var instants;
    try {
      instants = instantsFor(wallMs, zone);
    } catch (e) {
      showHint(input, "", false);
      return null;
    }
    if (instants.length === 1) {
      var utc = "= " + utcText(instants[0]) + " · site clock " + offsetText(instants[0], zone);
      showHint(input, utc, false);
      return instants[0];
    }
    if (instants.length === 0) {
      var gap = "This time does not exist in " + zone + ": the clocks jump forward then.";
      showHint(input, gap, true);
    } else {
      var overlap = "This time happens twice in " + zone + ": the clocks go back then.";
      showHint(input, overlap, true);
    }
    return null;
  }

  var dayInput = document.getElementById("id_start_date");
  var startInput = document.getElementById("id_start_local");
  var endInput = document.getElementById("id_end_local");
  var dayHint = document.getElementById("id_end_local_day");
  var timeInputs = [dayInput, startInput, endInput].filter(Boolean);

  function updateTimes() {
    if (!dayInput || !startInput || !endInput) {
      return;
    }
    var zone = selectedZone();
    var day = parseDay(dayInput.value);
    var start = parseTime(startInput.value);
    var end = parseEnd(endInput.value);
    var startWall = null;
    var endWall = null;
    if (day && start && yearProblem(day)) {
      showHint(startInput, yearProblem(day), true);
    } else if (day && start) {
      startWall = wallMsOf(day, start);
      utcLine(startInput, startWall, zone);
    } else {
      showHint(startInput, "", false);
    }
    if (end && end.day && yearProblem(end.day)) {
      showHint(endInput, yearProblem(end.day), true);
    } else if (end && end.day) {
      endWall = wallMsOf(end.day, end.time);
    } else if (end && day && start && !yearProblem(day)) {
      var minutesLater = end.time.h * 60 + end.time.min - (start.h * 60 + start.min);
      if (minutesLater === 0) {
        showHint(
          endInput,
          "The end is the same time as the start: for a stay of a day or more, type the end's " +
            "date too.",
          true
        );
      } else {
        // Earlier than the start: the next day.
        endWall = wallMsOf(day, end.time) + (minutesLater < 0 ? DAY_MS : 0);
      }
    } else {
      showHint(endInput, "", false);
    }
    var endInstant = endWall === null ? null : utcLine(endInput, endWall, zone);
    if (dayHint) {
      var days = 0;
      if (startWall !== null && endWall !== null) {
        days = Math.floor(endWall / DAY_MS) - Math.floor(startWall / DAY_MS);
      }
      if (days > 0) {
        var later = days === 1 ? "the next day" : days + " days later";
        var abbreviation = endInstant !== null ? " " + zoneAbbreviation(endInstant, zone) : "";
        dayHint.textContent = "Ends " + later + ": " + wallText(endWall) + abbreviation;
      } else {
        dayHint.textContent = "";
      }
    }
  }

  // A default date ("tomorrow", data-tomorrow) follows the site picked: tomorrow is not the same
  // day everywhere. A date the dispatcher typed, or kept from the last plan, stays.
  var defaultDay = dayInput && dayInput.hasAttribute("data-tomorrow") ? dayInput.value : null;

  function tomorrowIn(zone) {
    var parts = {};
    formatter(zone)
      .formatToParts(new Date())
      .forEach(function (part) {
        parts[part.type] = part.value;
      });
    var next = new Date(
      Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day) + 1)
    );
    return next.getUTCFullYear() + "-" + pad(next.getUTCMonth() + 1) + "-" + pad(next.getUTCDate());
  }

  function followTomorrow() {
    var zone = selectedZone();
    if (defaultDay === null || !zone || dayInput.value !== defaultDay) {
      return;
    }
    try {
      defaultDay = tomorrowIn(zone);
    } catch (e) {
      return;
    }
    dayInput.value = defaultDay;
  }

  function updateAllTimes() {
    followTomorrow();
    updateTimes();
    if (zoneHint) {
      var zone = selectedZone();
      zoneHint.textContent = zone
        ? "Times are on the clock of the site: " + zone + ". UTC is shown under each time."
        : "Choose a site: times are typed on the site's own clock.";
    }
  }

  timeInputs.forEach(function (input) {
    input.addEventListener("input", updateTimes);
    input.addEventListener("change", updateTimes);
  });
  if (locationSelect) {
    locationSelect.addEventListener("change", updateAllTimes);
  }

  // The fields' state when a page with errors comes back from the server.
  showTarget();
  updateAllTimes();
  // After a refused save the focus goes to what to read first: the errors, else the warnings
  // (whose "Save anyway" box is then a few Tab presses away).
  var summary =
    document.getElementById("error-summary") || document.getElementById("warning-summary");
  if (summary) {
    summary.focus();
  }
})();
