// method=POST: hand the service ticket over at once; the visible button covers no-JS browsers.
(function () {
  var form = document.getElementById("cas-post");
  if (form) {
    form.submit();
  }
})();
