/* playfair page helpers (the player lives in player.js): the service worker, clearing
   cached pages at log-out, and upload progress on the artist dashboard. Everything here
   only improves pages that work without it. */
"use strict";
(function () {
  if ("serviceWorker" in navigator && window.isSecureContext) {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(function () {});
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.matches && form.matches("form[action$='/logout']") && window.caches) {
      caches.delete("playfair-pages-v1").catch(function () {});
    }
    if (form.matches && form.matches("form[data-upload]") && window.FormData) {
      uploadWithProgress(event, form);
    }
  });

  function uploadWithProgress(event, form) {
    var progress = form.querySelector("progress");
    var status = form.querySelector("[data-upload-status]");
    if (!progress || !status) return;
    event.preventDefault();
    var request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("Accept", "text/html");
    request.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) {
        progress.max = e.total;
        progress.value = e.loaded;
        status.textContent = Math.round((100 * e.loaded) / e.total) + "%";
      }
    });
    request.addEventListener("load", function () {
      if (request.status >= 200 && request.status < 400) {
        window.location.assign(request.responseURL || form.getAttribute("data-done") || "/dashboard");
      } else {
        status.textContent = (request.responseText || "").replace(/<[^>]+>/g, " ").trim().slice(0, 300)
          || "The upload failed.";
      }
    });
    request.addEventListener("error", function () {
      status.textContent = "The upload failed: the connection was lost.";
    });
    progress.hidden = false;
    request.send(new FormData(form));
  }
})();
