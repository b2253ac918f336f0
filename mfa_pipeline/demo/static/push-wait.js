// The push waiting page: long-poll this app (never the MFA service) until the phone answers,
// then continue the sign-in. Without JavaScript the "I approved it" button does the same.
(function () {
  "use strict";
  var root = document.getElementById("push-wait");
  if (!root || root.dataset.status !== "pending") return;
  var live = document.getElementById("push-status");
  var done = document.getElementById("push-done");
  var again = document.getElementById("push-new");
  var wait = function (ms) { return new Promise(function (r) { setTimeout(r, ms); }); };

  async function poll() {
    for (;;) {
      var answer;
      try {
        var response = await fetch(root.dataset.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (response.status === 404) return; // no push waits any more (signed in elsewhere)
        if (!response.ok) { await wait(2000); continue; }
        answer = await response.json();
      } catch (e) {
        await wait(2000);
        continue;
      }
      if (answer.status === "pending") continue;
      live.textContent = answer.message;
      if (answer.status === "approved") {
        done.submit();
      } else {
        again.hidden = false;
        again.querySelector("button").focus();
      }
      return;
    }
  }
  poll();
})();
