// mediasvc player: attaches hls.js (or native HLS on Safari) to every <video data-hls="URL">.
// State for people and tests: the <video> gets data-state = loading | playing | error, and data-error on failure.
(function () {
  function attach(video) {
    var src = video.dataset.hls;
    video.dataset.state = "loading";
    video.addEventListener("playing", function () { video.dataset.state = "playing"; });
    if (window.Hls && window.Hls.isSupported()) {
      var hls = new window.Hls({ enableWorker: true });
      hls.on(window.Hls.Events.ERROR, function (_event, data) {
        if (!data.fatal) return;
        video.dataset.state = "error";
        var status = data.response && data.response.code ? " (HTTP " + data.response.code + ")" : "";
        video.dataset.error = data.details + status;
        var note = video.parentElement.querySelector(".player-error");
        if (note) { note.textContent = "Playback failed: " + data.details + status; note.hidden = false; }
      });
      hls.loadSource(src);
      hls.attachMedia(video);
      video.hls = hls;
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = src;
    } else {
      video.dataset.state = "error";
      video.dataset.error = "HLS is not supported by this browser";
    }
  }
  function init(root) {
    (root || document).querySelectorAll("video[data-hls]:not([data-state])").forEach(attach);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", function () { init(); });
  else init();
  document.addEventListener("htmx:afterSettle", function (event) { init(event.target); });
})();
