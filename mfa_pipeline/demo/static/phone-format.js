// SMS setup: format the number as it is typed and pick the country from a +prefix, asking this
// app (which uses libphonenumber's rules). Only while typing at the end, so the caret stays put.
(function () {
  "use strict";
  var form = document.getElementById("phone-form");
  if (!form) return;
  var phone = document.getElementById("phone");
  var country = document.getElementById("country");
  var latest = 0;

  async function reformat() {
    if (phone.selectionStart !== phone.value.length) return;
    var ticket = ++latest;
    var query = new URLSearchParams({ number: phone.value, country: country.value });
    try {
      var response = await fetch(form.dataset.formatUrl + "?" + query, { credentials: "same-origin" });
      if (!response.ok || ticket !== latest) return;
      var answer = await response.json();
      if (ticket !== latest || phone.selectionStart !== phone.value.length) return;
      if (answer.formatted) phone.value = answer.formatted;
      if (answer.country && answer.country !== country.value) country.value = answer.country;
    } catch (e) { /* formatting is a nicety: the server parses whatever is sent */ }
  }
  phone.addEventListener("input", reformat);
  country.addEventListener("change", reformat);
})();
