// The console's own script: the sign-in proof, the charts and the
// conditional polls. Everything else on the pages is server-rendered HTML
// kept live by htmx (vendor/htmx.min.js).
"use strict";

(function () {
  const form = document.getElementById("signin");
  if (!form) {
    return;
  }
  const hint = document.getElementById("signin-hint");
  const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!window.crypto || !window.crypto.subtle) {
      hint.hidden = false;
      hint.textContent = "This browser offers no WebCrypto here: the console signs in over HTTPS or on localhost only.";
      return;
    }
    const keyId = form.elements.keyId.value.trim();
    const secret = document.getElementById("secret").value;
    // The secret never leaves the page: the endpoint checks an HMAC of
    // its one-time challenge, made with the secret as the key.
    const enc = new TextEncoder();
    const key = await crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    const msg = "berth-console-signin\n" + form.elements.nonce.value + "\n" + keyId;
    form.elements.proof.value = hex(await crypto.subtle.sign("HMAC", key, enc.encode(msg)));
    form.submit();
  });
})();

// Charts: an element .chart[data-src] gets a uPlot chart of the JSON its
// data-src answers ({times, series: [{label, values}], percent}), fetched
// again every 30 s.
(function () {
  const charts = document.querySelectorAll(".chart[data-src]");
  if (charts.length === 0 || !window.uPlot) {
    return;
  }
  const colours = ["#0b6bcb", "#b3261e", "#1b7f3b", "#8a4baf", "#c26a00"];
  charts.forEach((el) => {
    let plot = null;
    const draw = async () => {
      const resp = await fetch(el.dataset.src, { headers: { Accept: "application/json" } });
      if (!resp.ok) {
        return;
      }
      const d = await resp.json();
      if (d.times.length === 0) {
        return;
      }
      const data = [d.times].concat(d.series.map((s) => s.values));
      if (plot) {
        plot.setData(data);
        return;
      }
      el.replaceChildren();
      plot = new uPlot({
        width: (el.clientWidth || 816) - 16,
        height: 220,
        scales: d.percent ? { y: { range: [0, 100] } } : {},
        series: [{}].concat(d.series.map((s, i) => ({ label: s.label, stroke: colours[i % colours.length], width: 2, spanGaps: false }))),
      }, data, el);
    };
    draw();
    setInterval(draw, 30000);
  });
})();

// Conditional polls: a polled part answers with an ETag, which the next
// poll of the same path sends back as If-None-Match; the endpoint then
// answers 304 when nothing changed, and htmx (configured in the page's
// htmx-config) leaves the part as it is.
(function () {
  const tags = new Map();
  document.body.addEventListener("htmx:configRequest", (ev) => {
    const tag = tags.get(ev.detail.path);
    if (ev.detail.verb === "get" && tag) {
      ev.detail.headers["If-None-Match"] = tag;
    }
  });
  document.body.addEventListener("htmx:afterRequest", (ev) => {
    const xhr = ev.detail.xhr;
    const tag = xhr && xhr.getResponseHeader("ETag");
    if (tag && ev.detail.requestConfig && ev.detail.requestConfig.verb === "get") {
      tags.set(ev.detail.requestConfig.path, tag);
    }
  });
})();
