"""The review site's one stylesheet and one script, inline in every page (no file, font or request to fetch).

The script: on a video page, each segment's events table seeks its video when an event is clicked, the row of
the event being played is marked as playback goes on, and the segment's dialogue and events become a text
track of the video (cues added from the page's JSON data, so it works from file:// where a .vtt file could
not be fetched). Text only ever goes in through textContent and VTTCue text.
"""

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #1d1d1f; }
nav { margin-bottom: 1em; } nav a { margin-right: .3em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f4f4f6; }
tr.event { cursor: pointer; } tr.event:hover { background: #eef4ff; }
tr.event.current { background: #ffe9a8; }
section.segment { border-top: 2px solid #ccc; padding-top: .8em; margin-top: 1.2em; }
video { width: 480px; max-width: 100%; background: #000; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #ccc; border-radius: 6px; padding: 8px 12px; width: 340px; }
.card h3 { margin: 0 0 .3em; } .muted { color: #666; }
svg text { font: 12px system-ui, sans-serif; }
"""

SCRIPT = """
(function () {
  "use strict";
  function data(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }
  document.querySelectorAll("section.segment").forEach(function (section) {
    var video = section.querySelector("video");
    var rows = Array.prototype.slice.call(section.querySelectorAll("tr.event"));
    if (!video) { return; }
    rows.forEach(function (row) {
      row.addEventListener("click", function () {
        video.currentTime = parseFloat(row.dataset.t);
        mark();
      });
    });
    function mark() {
      var now = video.currentTime, current = null;
      rows.forEach(function (row) { if (parseFloat(row.dataset.t) <= now + 0.05) { current = row; } });
      rows.forEach(function (row) { row.classList.toggle("current", row === current); });
    }
    video.addEventListener("timeupdate", mark);
    video.addEventListener("seeked", mark);
    var cues = data(section.dataset.cues);
    if (cues && typeof VTTCue !== "undefined") {
      var track = video.addTextTrack("subtitles", "dialogue and events", "en");
      cues.forEach(function (c) { track.addCue(new VTTCue(c.start, c.end, c.text)); });
      track.mode = "showing";
    }
  });
}());
"""
