/* 请假天数 and other day counts (a form field with "days_of"): shown read-only, and counted
 * again here as the applicant changes the dates, both days counted. The server counts on every
 * save and submission, so this is only what the page shows meanwhile; without script the count
 * appears after the next save. Loaded as a file because the CSP forbids inline scripts.
 */
(function () {
  "use strict";

  var DAY_MS = 24 * 60 * 60 * 1000;

  function dateOf(input) {
    // <input type="date"> gives YYYY-MM-DD or ""; read as UTC so no daylight saving shifts it.
    var match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(input ? input.value : "");
    return match ? Date.UTC(+match[1], +match[2] - 1, +match[3]) : null;
  }

  function bind(output) {
    var source = output.getAttribute("data-days-of");
    var start = document.getElementById("field-" + source + "-start");
    var end = document.getElementById("field-" + source + "-end");
    if (!start || !end) {
      return; // the dates are not editable on this page: the server's count stands
    }
    function count() {
      var from = dateOf(start);
      var to = dateOf(end);
      var days = from !== null && to !== null && to >= from ? Math.round((to - from) / DAY_MS) + 1 : null;
      output.textContent = days === null ? output.getAttribute("data-empty") || "" : String(days);
    }
    start.addEventListener("change", count);
    end.addEventListener("change", count);
    start.addEventListener("input", count);
    end.addEventListener("input", count);
  }

  var outputs = document.querySelectorAll("[data-days-of]");
  for (var i = 0; i < outputs.length; i++) {
    bind(outputs[i]);
  }
})();
