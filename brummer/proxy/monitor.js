/* brummer browser monitor: reports page loads, console errors and warnings, uncaught errors,
 * unhandled promise rejections and failed fetch/XHR requests to the brummer proxy that
 * served this page. Small and dependency-free; it changes nothing on the page. */
(function () {
  "use strict";
  if (window.__brummerMonitor) { return; }
  var ENDPOINT = "/__brummer__/telemetry";
  var FLUSH_MS = 1000;   // a batch waits at most this long
  var MAX_BATCH = 50;    // or goes out when this many events are queued
  var MAX_TEXT = 2000;   // characters kept of any message
  var script = document.currentScript;
  var processName = (script && script.getAttribute("data-brummer-process")) || "";
  var sessionId = "brummer_" + Date.now() + "_" + Math.random().toString(36).slice(2, 11);
  var queue = [];
  var timer = null;
  var origFetch = window.fetch ? window.fetch.bind(window) : null;
  var OrigXHR = window.XMLHttpRequest;
  var origOpen = OrigXHR && OrigXHR.prototype.open;
  var origSend = OrigXHR && OrigXHR.prototype.send;

  function text(value) {
    var out;
    try {
      if (value instanceof Error) { out = value.name + ": " + value.message; }
      else if (typeof value === "string") { out = value; }
      else { out = JSON.stringify(value); }
    } catch (e) { out = String(value); }
    return String(out).slice(0, MAX_TEXT);
  }

  function send(body, leaving) {
    try {
      if (leaving && navigator.sendBeacon) {
        navigator.sendBeacon(ENDPOINT, new Blob([body], { type: "text/plain" }));
      } else if (origFetch) {
        origFetch(ENDPOINT, { method: "POST", body: body, keepalive: body.length < 60000,
                              headers: { "Content-Type": "text/plain" } })
          .catch(function () {});
      } else if (OrigXHR) {
        var xhr = new OrigXHR();
        origOpen.call(xhr, "POST", ENDPOINT, true);
        xhr.__brummerOwn = true;
        origSend.call(xhr, body);
      }
    } catch (e) { /* the proxy went away: telemetry is best effort */ }
  }

  function flush(leaving) {
    if (timer) { clearTimeout(timer); timer = null; }
    if (!queue.length) { return; }
    var events = queue.splice(0, queue.length);
    send(JSON.stringify({ sessionId: sessionId, url: location.href, process: processName,
                          events: events }), leaving);
  }

  function report(type, data) {
    queue.push({ type: type, timestamp: Date.now(), data: data });
    if (queue.length >= MAX_BATCH) { flush(false); }
    else if (!timer) { timer = setTimeout(function () { flush(false); }, FLUSH_MS); }
  }

  window.addEventListener("error", function (ev) {
    var target = ev.target;
    if (target && target !== window && (target.src || target.href)) {
      report("resource_error", { url: text(target.src || target.href),
                                 tag: String(target.tagName || "").toLowerCase() });
      return;
    }
    var err = ev.error;
    report("javascript_error", {
      message: text(ev.message || (err && err.message) || "error"),
      filename: text(ev.filename || ""), lineno: ev.lineno || 0, colno: ev.colno || 0,
      stack: err && err.stack ? text(err.stack) : ""
    });
  }, true);

  window.addEventListener("unhandledrejection", function (ev) {
    var reason = ev.reason;
    report("unhandled_rejection", { message: text(reason),
                                    stack: reason && reason.stack ? text(reason.stack) : "" });
  });

  ["error", "warn"].forEach(function (level) {
    var original = console[level];
    if (typeof original !== "function") { return; }
    console[level] = function () {
      try {
        var parts = [];
        for (var i = 0; i < arguments.length; i++) { parts.push(text(arguments[i])); }
        var first = arguments[0];
        report("console", { level: level, message: parts.join(" ").slice(0, MAX_TEXT),
                            stack: first instanceof Error && first.stack ? text(first.stack) : "" });
      } catch (e) { /* never break the page's console */ }
      return original.apply(console, arguments);
    };
  });

  if (origFetch) {
    window.fetch = function (input, init) {
      var url = typeof input === "string" ? input : (input && input.url) || String(input);
      var method = (init && init.method) || (input && input.method) || "GET";
      return origFetch(input, init).then(function (response) {
        if (!response.ok) {
          report("network_error", { url: text(url), method: method, status: response.status,
                                    api: "fetch" });
        }
        return response;
      }, function (error) {
        report("network_error", { url: text(url), method: method, status: 0,
                                  error: text(error), api: "fetch" });
        throw error;
      });
    };
  }

  if (OrigXHR) {
    OrigXHR.prototype.open = function (method, url) {
      this.__brummer = { method: method, url: String(url) };
      return origOpen.apply(this, arguments);
    };
    OrigXHR.prototype.send = function () {
      var xhr = this;
      if (xhr.__brummer && !xhr.__brummerOwn) {
        xhr.addEventListener("loadend", function () {
          if (xhr.status === 0 || xhr.status >= 400) {
            report("network_error", { url: text(xhr.__brummer.url), method: xhr.__brummer.method,
                                      status: xhr.status, api: "xhr" });
          }
        });
      }
      return origSend.apply(this, arguments);
    };
  }

  window.addEventListener("load", function () {
    setTimeout(function () {
      var data = { title: text(document.title), referrer: text(document.referrer) };
      var nav = performance.getEntriesByType && performance.getEntriesByType("navigation")[0];
      if (nav) {
        data.type = nav.type;
        data.ttfb = Math.round(nav.responseStart - nav.requestStart);
        data.domContentLoaded = Math.round(nav.domContentLoadedEventEnd);
        data.load = Math.round(nav.loadEventStart);
        data.transferSize = nav.transferSize || 0;
      }
      report("page_load", data);
    }, 0);
  });

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") { flush(true); }
  });
  window.addEventListener("pagehide", function () { flush(true); });

  window.__brummerMonitor = { sessionId: sessionId, process: processName, flush: flush,
                              report: report };
})();
