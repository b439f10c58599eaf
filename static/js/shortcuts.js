/* Keyboard shortcuts, declared in the page itself: any link or button with an
   `aria-keyshortcuts` attribute ("n", "Control+Enter Meta+Enter", "?") is clicked when its keys
   are pressed, so what screen readers announce and what the keys do are one list.
   - Keys with Ctrl/⌘ work everywhere, in fields too (that is their point on the plan form).
   - Single keys ("n", "?") never fire while typing in a field, with a modifier held, or when
     switched off in the shortcuts dialog (WCAG 2.1.4; remembered in this browser).
   - A single key that leaves the page ("n") does nothing while a form on it has unsaved changes
     (typed since the page loaded, or sent back by the server with errors: `data-unsaved`).
   - "?" (or the footer button) opens the list in a modal <dialog>; Esc closes it and the focus
     goes back where it was. */
(function () {
  "use strict";

  var OFF_KEY = "mintportal.singleKeyShortcuts";
  var dialog = document.getElementById("shortcuts-dialog");
  var opener = document.getElementById("shortcuts-open");
  var toggle = document.getElementById("single-key-shortcuts");
  var dirty = false;

  function singleKeysOn() {
    try {
      return window.localStorage.getItem(OFF_KEY) !== "off";
    } catch (e) {
      return true;
    }
  }

  function typingIn(element) {
    if (!element) {
      return false;
    }
    if (element.isContentEditable) {
      return true;
    }
    var tag = element.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") {
      return true;
    }
    if (tag !== "INPUT") {
      return false;
    }
    var type = (element.getAttribute("type") || "text").toLowerCase();
    return ["button", "submit", "reset", "checkbox", "radio", "hidden"].indexOf(type) === -1;
  }

  // "Control+Shift+Enter" → {key: "enter", control: true, shift: true, alt: false, meta: false}
  function parse(combo) {
    var parts = combo.split("+");
    var spec = {
      key: parts.pop().toLowerCase(),
      control: false,
      shift: false,
      alt: false,
      meta: false,
    };
    parts.forEach(function (part) {
      spec[part.toLowerCase()] = true;
    });
    spec.single = !spec.control && !spec.alt && !spec.meta && spec.key.length === 1;
    return spec;
  }

  function matches(spec, event) {
    var key = (event.key || "").toLowerCase();
    if (key !== spec.key) {
      return false;
    }
    if (spec.single) {
      // "?" needs Shift on most layouts: for a character, the character is what counts.
      return !event.ctrlKey && !event.altKey && !event.metaKey;
    }
    return (
      event.ctrlKey === spec.control &&
      event.shiftKey === spec.shift &&
      event.altKey === spec.alt &&
      event.metaKey === spec.meta
    );
  }

  function visible(element) {
    return !element.hidden && !element.disabled && element.getClientRects().length > 0;
  }

  function openDialog() {
    if (!dialog || dialog.open) {
      return;
    }
    dialog.returnFocusTo = document.activeElement;
    dialog.showModal();
  }

  if (dialog) {
    dialog.addEventListener("close", function () {
      var back = dialog.returnFocusTo;
      if (back && typeof back.focus === "function" && document.contains(back)) {
        back.focus();
      }
    });
  }
  if (opener && dialog) {
    // Shown only with this script: without it the button would open nothing.
    document.getElementById("shortcuts-footer").hidden = false;
    opener.addEventListener("click", openDialog);
  }
  if (toggle) {
    toggle.checked = singleKeysOn();
    toggle.addEventListener("change", function () {
      try {
        if (toggle.checked) {
          window.localStorage.removeItem(OFF_KEY);
        } else {
          window.localStorage.setItem(OFF_KEY, "off");
        }
      } catch (e) {
        // Storage refused (private mode): the choice lasts for this page only.
        toggle.dataset.off = toggle.checked ? "" : "off";
      }
    });
  }
  document.querySelectorAll(".shortcut-hint").forEach(function (hint) {
    hint.hidden = false;
  });

  document.addEventListener("input", function (event) {
    if (event.target.form) {
      dirty = true;
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.isComposing || event.repeat) {
      return;
    }
    if (dialog && dialog.open) {
      return; // The dialog's own keys: Tab inside it, Esc closes it.
    }
    var targets = document.querySelectorAll("[aria-keyshortcuts]");
    for (var i = 0; i < targets.length; i++) {
      var element = targets[i];
      var combos = element.getAttribute("aria-keyshortcuts").split(/\s+/).map(parse);
      var spec = combos.filter(function (c) {
        return matches(c, event);
      })[0];
      if (!spec) {
        continue;
      }
      if (spec.single) {
        var off = !singleKeysOn() || (toggle && toggle.dataset.off === "off");
        if (off || typingIn(event.target)) {
          return;
        }
        if (element.tagName === "A" && (dirty || document.querySelector("form[data-unsaved]"))) {
          return; // Leaving would lose what was typed.
        }
      }
      if (element === opener) {
        event.preventDefault();
        openDialog();
        return;
      }
      if (!visible(element)) {
        continue;
      }
      event.preventDefault();
      element.click();
      return;
    }
  });
})();
