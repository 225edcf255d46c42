// response_mode=form_post: post the authorization response to the client at once; the visible
// 继续 button covers browsers without JavaScript.
(function () {
  var form = document.getElementById("form-post");
  if (form) {
    form.submit();
  }
})();
