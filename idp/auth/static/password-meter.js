/* Password strength meter (密码强度).
 *
 * For every <input data-strength-url="…" id="…">, asks the server how strong the typed password
 * is and shows the answer in <div class="password-meter" data-meter-for="<input id>">.
 * The server scores it (zxcvbn with the person's own details), so the rules live in one place.
 * Loaded as a file because the CSP forbids inline scripts; builds the DOM with textContent only.
 * An optional data-label-format on the meter, e.g. "Strength: {label} ({score})", localises the
 * label line; the default is the Chinese "强度：{label}（{score}分）".
 */
(function () {
  "use strict";

  var DEBOUNCE_MS = 250;
  var SCORE_CLASSES = ["score-0", "score-1", "score-2", "score-3", "score-4"];
  var DEFAULT_FORMAT = "强度：{label}（{score}分）";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") || "" : "";
  }

  function meterFor(input) {
    // Compared attribute by attribute, so that ids need no CSS escaping.
    var meters = document.querySelectorAll(".password-meter[data-meter-for]");
    for (var i = 0; i < meters.length; i++) {
      if (meters[i].getAttribute("data-meter-for") === input.id) {
        return meters[i];
      }
    }
    return null;
  }

  function parts(meter) {
    var bar = meter.querySelector(".password-meter-bar");
    var label = meter.querySelector(".password-meter-label");
    if (bar) {
      bar.setAttribute("role", "progressbar");
      bar.setAttribute("aria-valuemin", "0");
      bar.setAttribute("aria-valuemax", "100");
    }
    if (label) {
      // Screen readers announce the new strength without stealing focus.
      label.setAttribute("aria-live", "polite");
    }
    return {
      bar: bar,
      fill: bar ? bar.querySelector("span") : null,
      label: label,
      feedback: meter.querySelector(".password-meter-feedback")
    };
  }

  function setScoreClass(meter, score) {
    for (var i = 0; i < SCORE_CLASSES.length; i++) {
      meter.classList.remove(SCORE_CLASSES[i]);
    }
    if (score !== null) {
      meter.classList.add("score-" + score);
    }
  }

  function clearChildren(node) {
    while (node && node.firstChild) {
      node.removeChild(node.firstChild);
    }
  }

  function reset(meter, p) {
    setScoreClass(meter, null);
    if (p.fill) { p.fill.style.width = "0%"; }
    if (p.bar) { p.bar.setAttribute("aria-valuenow", "0"); }
    if (p.label) { p.label.textContent = ""; }
    clearChildren(p.feedback);
  }

  function show(meter, p, data) {
    var score = Math.max(0, Math.min(4, parseInt(data.score, 10) || 0));
    var percent = Math.max(0, Math.min(100, parseInt(data.percent, 10) || 0));
    setScoreClass(meter, score);
    // A CSSOM property, not a style attribute: the CSP allows it.
    if (p.fill) { p.fill.style.width = percent + "%"; }
    if (p.bar) { p.bar.setAttribute("aria-valuenow", String(percent)); }
    if (p.label) {
      var format = meter.getAttribute("data-label-format") || DEFAULT_FORMAT;
      p.label.textContent = format
        .replace("{label}", String(data.label || ""))
        .replace("{score}", String(score));
    }
    clearChildren(p.feedback);
    if (!p.feedback) { return; }
    var feedback = Array.isArray(data.feedback) ? data.feedback : [];
    for (var i = 0; i < feedback.length; i++) {
      var item = document.createElement("li");
      item.textContent = String(feedback[i]);
      p.feedback.appendChild(item);
    }
  }

  function attach(input) {
    var meter = meterFor(input);
    if (!meter) { return; }
    var p = parts(meter);
    var url = input.getAttribute("data-strength-url");
    var timer = null;
    var latest = 0;     // only the answer to the latest keystroke may paint the meter
    var controller = null;

    function measure() {
      var password = input.value;
      var request = ++latest;
      if (controller) { controller.abort(); }
      if (!password) {
        reset(meter, p);
        return;
      }
      controller = typeof AbortController === "function" ? new AbortController() : null;
      fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          "Accept": "application/json",
          "X-CSRFToken": csrfToken()
        },
        body: JSON.stringify({ password: password }),
        signal: controller ? controller.signal : undefined
      })
        .then(function (response) {
          if (!response.ok) { throw new Error("strength check failed: " + response.status); }
          return response.json();
        })
        .then(function (data) {
          if (request === latest) { show(meter, p, data); }
        })
        .catch(function () {
          // The meter is advice only; the form is still checked by the server on submit.
          if (request === latest) { reset(meter, p); }
        });
    }

    input.addEventListener("input", function () {
      if (timer) { clearTimeout(timer); }
      timer = setTimeout(measure, DEBOUNCE_MS);
    });
    // Typed (or filled in by the browser's password manager) before this script ran: the
    // input event has gone by, so measure what is there now.
    if (input.value) { measure(); }
  }

  function init() {
    var inputs = document.querySelectorAll("input[data-strength-url]");
    for (var i = 0; i < inputs.length; i++) {
      attach(inputs[i]);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
