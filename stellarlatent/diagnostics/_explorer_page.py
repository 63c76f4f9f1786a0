"""The page of `~stellarlatent.diagnostics.LatentExplorer`: its HTML and its JavaScript.

``PAGE`` is the document, with ``@TITLE@``, ``@DATA@`` (the JSON payload
built by `LatentExplorer.from_estimator`) and ``@SCRIPT@`` (``SCRIPT``) to fill
in. The script is plain JavaScript (no library): it decodes the base64
arrays of the payload, runs the exported decoder (a linear layer, then
activations and transposed convolutions, in float64) and draws on canvases.
"""

__all__ = ["PAGE", "SCRIPT"]

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'">
<title>@TITLE@</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:12px;color:#222;background:#fff}
h1{font-size:1.3em;margin:0 0 4px}h2{font-size:1.05em;margin:4px 0}h3{font-size:.95em;margin:8px 0 4px}
.row{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}section{flex:0 0 auto;border:1px solid #ddd;border-radius:6px;padding:8px}
canvas{display:block;cursor:crosshair}.controls{font-size:.9em;margin-bottom:4px}
.controls select,.controls input{margin-right:8px}#sliders{display:grid;
grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:2px 16px;font-size:.9em}
#sliders label{display:flex;align-items:center;gap:6px}#sliders input{flex:1}
#sliders output{width:5.5em;font-variant-numeric:tabular-nums}
table{border-collapse:collapse;font-size:.85em}td{padding:1px 8px 1px 0}
#neighbours{padding-left:0;list-style:none;margin:0}#neighbours li{display:flex;gap:8px;
align-items:center;cursor:pointer;font-size:.85em;padding:2px}#neighbours li:hover{background:#eef}
.note{color:#666;font-size:.85em}#zoom{position:sticky;top:0;background:#fff;padding:4px 0;
font-size:.9em;z-index:1}#zoom input{width:7em}
</style>
</head>
<body>
<h1>@TITLE@</h1>
<p id="summary" class="note"></p>
<div id="zoom">Wavelength range: <input id="wmin" type="number" step="any"> to
<input id="wmax" type="number" step="any"> <span id="wunit"></span>
<button id="zoom-reset" type="button">whole range</button>
<span class="note">(or drag across a spectrum; double-click for the whole range)</span></div>
<div class="row">
<section id="scatter-panel" style="width:500px"><h2>Latent space</h2>
<div class="controls">x <select id="xdim"></select> y <select id="ydim"></select>
colour <select id="colour"></select></div>
<canvas id="scatter" width="500" height="440"></canvas>
<div id="hover" class="note">&nbsp;</div>
<div id="colourbar" class="note"></div>
<p class="note">Click a point to select that star.</p></section>
<section id="star-panel" style="width:680px"><h2 id="star-title"></h2>
<canvas id="star" width="680" height="250"></canvas>
<p id="star-note" class="note"></p>
<table id="star-labels"></table>
<h3 id="neighbours-title"></h3><ol id="neighbours"></ol></section>
</div>
<section id="slider-panel" style="margin-top:16px"><h2>Decoded spectrum
<button id="reset" type="button">reset to the selected star</button></h2>
<div id="sliders"></div>
<canvas id="decoded" width="1220" height="280"></canvas>
<p class="note">Each slider moves one latent of the selected star; the other latents keep
the star's values. Grey: the star's reconstruction.</p></section>
<script type="application/json" id="explorer-data">@DATA@</script>
<script>@SCRIPT@</script>
</body>
</html>
"""  # noqa: E501 - the page's HTML and CSS, kept as written

SCRIPT = r"""
(function () {
"use strict";
var D = JSON.parse(document.getElementById("explorer-data").textContent);
function bytes(s) { var b = atob(s), n = b.length, u = new Uint8Array(n);
  for (var i = 0; i < n; i++) u[i] = b.charCodeAt(i); return u.buffer; }
function f32(s) { return new Float32Array(bytes(s)); }
function f64(s) { return new Float64Array(bytes(s)); }
function i32(s) { return new Int32Array(bytes(s)); }
function u16(s) { return new Uint16Array(bytes(s)); }
function $(id) { return document.getElementById(id); }
function fmt(v) { if (!isFinite(v)) return "\u2013"; var a = Math.abs(v);
  return (a !== 0 && (a < 1e-3 || a >= 1e5)) ? v.toExponential(3) : +v.toPrecision(5) + ""; }
var N = D.n, DIM = D.latent_dim, P = D.n_pixels;
var Z = f32(D.z), WAVE = f64(D.axis.values), UNIT = D.axis.unit;
var K = D.neighbors.k, NB = i32(D.neighbors.index), NBD = f32(D.neighbors.distance);
var LABELS = D.labels.map(function (c) { return {name: c.name, unit: c.unit, v: f32(c.values)}; });
var ROWS = i32(D.spectra.rows), CODES = u16(D.spectra.codes);
var OFF = f32(D.spectra.offset), SC = f32(D.spectra.scale), SLOT = {};
for (var r = 0; r < ROWS.length; r++) SLOT[ROWS[r]] = r;
function nameOf(i) { return D.names ? D.names[i] : "spectrum " + i; }
function zOf(i) { return Array.prototype.slice.call(Z.subarray(i * DIM, (i + 1) * DIM)); }
function observed(i) {
  if (!(i in SLOT)) return null;
  var s = SLOT[i], out = new Float64Array(P), o = OFF[s], k = SC[s];
  for (var p = 0; p < P; p++) { var c = CODES[s * P + p]; out[p] = c === 65535 ? NaN : o + c * k; }
  return out; }

// ---- the decoder: the forward pass of the exported network -------------------
var DEC = D.decoder, LW = f32(DEC.linear.weight), LB = f32(DEC.linear.bias);
DEC.layers.forEach(function (l) { if (l.type === "conv_transpose") { l.w = f32(l.weight); l.b = f32(l.bias); } });
function decode(z) {
  var nin = DEC.linear["in"], nout = DEC.linear.out, x = new Float64Array(nout), o, i;
  for (o = 0; o < nout; o++) { var s = LB[o], row = o * nin;
    for (i = 0; i < nin; i++) s += LW[row + i] * z[i]; x[o] = s; }
  var L = DEC.shape[1];
  DEC.layers.forEach(function (l) {
    var n = x.length, j;
    if (l.type === "leaky_relu") { for (j = 0; j < n; j++) if (x[j] < 0) x[j] *= l.slope; }
    else if (l.type === "relu") { for (j = 0; j < n; j++) if (x[j] < 0) x[j] = 0; }
    else if (l.type === "tanh") { for (j = 0; j < n; j++) x[j] = Math.tanh(x[j]); }
    else if (l.type === "sigmoid") { for (j = 0; j < n; j++) x[j] = 1 / (1 + Math.exp(-x[j])); }
    else if (l.type === "conv_transpose") {
      // y[co, i * st - pad + j] += x[ci, i] * w[ci, co, j], innermost loop over i
      var ci, co, t, k = l.k, st = l.stride, pad = l.padding, Ci = l["in"], Co = l.out;
      var Lo = (L - 1) * st - 2 * pad + k + l.output_padding, y = new Float64Array(Co * Lo), w = l.w;
      for (co = 0; co < Co; co++) { var b = l.b[co]; for (t = 0; t < Lo; t++) y[co * Lo + t] = b; }
      for (j = 0; j < k; j++) {
        var off = j - pad, ilo = Math.max(0, Math.ceil(-off / st)), ihi = Math.min(L, Math.floor((Lo - 1 - off) / st) + 1);
        for (ci = 0; ci < Ci; ci++) { var xb = ci * L;
          for (co = 0; co < Co; co++) { var wv = w[(ci * Co + co) * k + j]; if (wv === 0) continue;
            var yb = co * Lo + off;
            for (i = ilo; i < ihi; i++) y[yb + i * st] += wv * x[xb + i]; } } }
      x = y; L = Lo; }
  });
  return x.slice(0, P);
}

// ---- plotting helpers ----------------------------------------------------------
function ticks(lo, hi, n) {
  var span = hi - lo; if (!(span > 0)) return [lo];
  var step = Math.pow(10, Math.floor(Math.log10(span / n))), e = span / n / step;
  step *= e > 5 ? 10 : e > 2 ? 5 : e > 1 ? 2 : 1;
  var out = []; for (var v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step) out.push(v);
  return out; }
var M = {l: 58, r: 12, t: 10, b: 34};
function frame(ctx, W, H, xr, yr, xlabel, ylabel) {
  ctx.clearRect(0, 0, W, H); ctx.strokeStyle = "#888"; ctx.fillStyle = "#333";
  ctx.font = "11px sans-serif"; ctx.lineWidth = 1;
  ctx.strokeRect(M.l, M.t, W - M.l - M.r, H - M.t - M.b);
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  ticks(xr[0], xr[1], 8).forEach(function (v) { var px = sx(v, xr, W);
    ctx.beginPath(); ctx.moveTo(px, H - M.b); ctx.lineTo(px, H - M.b + 4); ctx.stroke();
    ctx.fillText(fmt(v), px, H - M.b + 5); });
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  ticks(yr[0], yr[1], 5).forEach(function (v) { var py = sy(v, yr, H);
    ctx.beginPath(); ctx.moveTo(M.l - 4, py); ctx.lineTo(M.l, py); ctx.stroke();
    ctx.fillText(fmt(v), M.l - 6, py); });
  ctx.textAlign = "center"; ctx.textBaseline = "bottom"; ctx.fillText(xlabel, (M.l + W - M.r) / 2, H);
  ctx.save(); ctx.translate(12, (M.t + H - M.b) / 2); ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = "middle"; ctx.fillText(ylabel, 0, 0); ctx.restore(); }
function sx(v, xr, W) { return M.l + (v - xr[0]) / (xr[1] - xr[0]) * (W - M.l - M.r); }
function sy(v, yr, H) { return H - M.b - (v - yr[0]) / (yr[1] - yr[0]) * (H - M.t - M.b); }
function range(vals) { var lo = Infinity, hi = -Infinity;
  for (var i = 0; i < vals.length; i++) { var v = vals[i]; if (v < lo) lo = v; if (v > hi) hi = v; }
  if (!(hi > lo)) { lo -= 0.5; hi += 0.5; } var p = 0.04 * (hi - lo); return [lo - p, hi + p]; }
var VIRIDIS = [[68,1,84],[72,40,120],[62,74,137],[49,104,142],[38,130,142],[31,158,137],
  [53,183,121],[109,205,89],[180,222,44],[253,231,37]];
function cmap(t) { if (!isFinite(t)) return "rgb(190,190,190)"; t = Math.min(1, Math.max(0, t)) * 9;
  var i = Math.min(8, Math.floor(t)), f = t - i, a = VIRIDIS[i], b = VIRIDIS[i + 1];
  return "rgb(" + [0, 1, 2].map(function (c) { return Math.round(a[c] + f * (b[c] - a[c])); }).join(",") + ")"; }

// ---- wavelength zoom -----------------------------------------------------------
var WFULL = [Math.min(WAVE[0], WAVE[P - 1]), Math.max(WAVE[0], WAVE[P - 1])];
if (!(WFULL[1] > WFULL[0])) WFULL = [WFULL[0] - 0.5, WFULL[1] + 0.5];
var zoom = WFULL.slice();
function setZoom(lo, hi) { lo = +lo; hi = +hi; if (!(isFinite(lo) && isFinite(hi))) return;
  if (hi < lo) { var t = lo; lo = hi; hi = t; } if (!(hi > lo)) return;
  zoom = [Math.max(WFULL[0], lo), Math.min(WFULL[1], hi)];
  if (!(zoom[1] > zoom[0])) zoom = WFULL.slice();
  $("wmin").value = +zoom[0].toPrecision(8); $("wmax").value = +zoom[1].toPrecision(8); drawSpectra(); }
function drawSeries(canvas, series, xlabel) {
  var ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, lo = Infinity, hi = -Infinity;
  series.forEach(function (s) { for (var p = 0; p < P; p++) { var w = WAVE[p], v = s.y[p];
    if (w >= zoom[0] && w <= zoom[1] && isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; } } });
  var yr = isFinite(lo) ? range([lo, hi]) : [0, 1];
  frame(ctx, W, H, zoom, yr, xlabel, "flux");
  ctx.save(); ctx.beginPath(); ctx.rect(M.l, M.t, W - M.l - M.r, H - M.t - M.b); ctx.clip();
  series.forEach(function (s) { ctx.strokeStyle = s.colour; ctx.lineWidth = s.width || 1;
    ctx.beginPath(); var pen = false;
    for (var p = 0; p < P; p++) { var v = s.y[p]; if (!isFinite(v)) { pen = false; continue; }
      var px = sx(WAVE[p], zoom, W), py = sy(v, yr, H);
      if (pen) ctx.lineTo(px, py); else ctx.moveTo(px, py); pen = true; }
    ctx.stroke(); });
  ctx.restore();
  var x = W - M.r - 6; ctx.textAlign = "right"; ctx.textBaseline = "top"; ctx.font = "12px sans-serif";
  series.slice().reverse().forEach(function (s, i) { if (!s.label) return;
    var tw = ctx.measureText(s.label).width; ctx.fillStyle = "rgba(255,255,255,0.85)";
    ctx.fillRect(x - tw - 3, M.t + 2 + 15 * i, tw + 6, 15);
    ctx.fillStyle = s.colour; ctx.fillText(s.label, x, M.t + 4 + 15 * i); });
  if (canvas.drag) { ctx.fillStyle = "rgba(60,110,220,0.15)";
    ctx.fillRect(Math.min(canvas.drag[0], canvas.drag[1]), M.t, Math.abs(canvas.drag[1] - canvas.drag[0]), H - M.t - M.b); }
}
function pixelToWave(canvas, px) { var W = canvas.width;
  return zoom[0] + (px - M.l) / (W - M.l - M.r) * (zoom[1] - zoom[0]); }
function canvasX(canvas, ev) { var r = canvas.getBoundingClientRect(); return (ev.clientX - r.left) * canvas.width / r.width; }
function canvasY(canvas, ev) { var r = canvas.getBoundingClientRect(); return (ev.clientY - r.top) * canvas.height / r.height; }
function zoomable(canvas) {
  canvas.addEventListener("mousedown", function (ev) { var x = canvasX(canvas, ev); canvas.drag = [x, x]; });
  canvas.addEventListener("mousemove", function (ev) { if (!canvas.drag) return;
    canvas.drag[1] = canvasX(canvas, ev); drawSpectra(); });
  window.addEventListener("mouseup", function () { var d = canvas.drag; if (!d) return; canvas.drag = null;
    if (Math.abs(d[1] - d[0]) > 4) setZoom(pixelToWave(canvas, d[0]), pixelToWave(canvas, d[1])); else drawSpectra(); });
  canvas.addEventListener("dblclick", function () { setZoom(WFULL[0], WFULL[1]); }); }

// ---- state ---------------------------------------------------------------------
var sel = 0, base = zOf(0), current = zOf(0), decoded = null, baseRecon = null, pending = false;
var XLABEL = UNIT === "pixel" ? "pixel" : "wavelength [" + UNIT + "]";
function drawDecoded(again) { pending = false; if (again !== false || !decoded) decoded = decode(current);
  drawSeries($("decoded"), [{y: baseRecon, colour: "#aaa", label: "reconstruction of " + nameOf(sel)},
    {y: decoded, colour: "#c0392b", width: 1.3, label: "decoded from the sliders"}], XLABEL); }
function schedule() { if (!pending) { pending = true; requestAnimationFrame(function () { if (pending) drawDecoded(); }); } }
var starSeries = [];
function drawSpectra() { drawSeries($("star"), starSeries, XLABEL); if (decoded) drawDecoded(false);
  thumbs.forEach(function (t) { drawThumb(t[0], t[1]); }); }

// ---- sliders -------------------------------------------------------------------
var sliders = {};
D.dims.forEach(function (d) {
  var lab = document.createElement("label"), span = document.createElement("span");
  span.textContent = "z" + d; span.style.width = "3em";
  var inp = document.createElement("input"); inp.type = "range"; inp.id = "slider-" + d;
  var zr = D.zrange[d]; inp.min = zr[0]; inp.max = zr[1]; inp.step = (zr[1] - zr[0]) / 1000;
  var out = document.createElement("output");
  inp.addEventListener("input", function () { current[d] = parseFloat(inp.value); out.textContent = fmt(current[d]); schedule(); });
  lab.appendChild(span); lab.appendChild(inp); lab.appendChild(out); $("sliders").appendChild(lab);
  sliders[d] = [inp, out]; });
function syncSliders() { D.dims.forEach(function (d) { sliders[d][0].value = current[d]; sliders[d][1].textContent = fmt(current[d]); }); }
$("reset").addEventListener("click", function () { current = base.slice(); syncSliders(); schedule(); });

// ---- scatter -------------------------------------------------------------------
function option(sel_, value, text) { var o = document.createElement("option"); o.value = value; o.textContent = text; sel_.appendChild(o); }
["xdim", "ydim"].forEach(function (id) { for (var d = 0; d < DIM; d++)
  option($(id), d, "z" + d + " (MAD " + (+D.mad[d].toPrecision(2)) + (D.informative.indexOf(d) >= 0 ? ", informative)" : ")")); });
option($("colour"), "none", "none");
LABELS.forEach(function (c, i) { option($("colour"), "label:" + i, c.name + (c.unit ? " [" + c.unit + "]" : "")); });
for (var d0 = 0; d0 < DIM; d0++) option($("colour"), "latent:" + d0, "z" + d0);
var order = D.dims.slice(); for (var dd = 0; dd < DIM; dd++) if (order.indexOf(dd) < 0) order.push(dd);
$("xdim").value = order[0]; $("ydim").value = order[Math.min(1, order.length - 1)];
$("colour").value = LABELS.length ? "label:0" : "none";
var SX = new Float64Array(N), SY = new Float64Array(N), SXR, SYR;
function column(key) { var out = new Float64Array(N), i;
  if (key.indexOf("label:") === 0) { var v = LABELS[+key.slice(6)].v; for (i = 0; i < N; i++) out[i] = v[i]; }
  else { var d = +key.slice(7); for (i = 0; i < N; i++) out[i] = Z[i * DIM + d]; } return out; }
var POINTS = document.createElement("canvas"), CAPTION = "";
function drawScatter(again) {
  var canvas = $("scatter"), ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, i;
  if (again !== false || !SXR) {
    var xd = +$("xdim").value, yd = +$("ydim").value, ck = $("colour").value;
    for (i = 0; i < N; i++) { SX[i] = Z[i * DIM + xd]; SY[i] = Z[i * DIM + yd]; }
    SXR = range(SX); SYR = range(SY);
    POINTS.width = W; POINTS.height = H; var pc = POINTS.getContext("2d");
    frame(pc, W, H, SXR, SYR, "z" + xd, "z" + yd);
    var C = null, clo = 0, chi = 1, NC = 64;
    if (ck !== "none") { C = column(ck); var fin = Array.prototype.filter.call(C, isFinite).sort(function (a, b) { return a - b; });
      if (fin.length) { clo = fin[Math.floor(0.01 * (fin.length - 1))]; chi = fin[Math.ceil(0.99 * (fin.length - 1))]; }
      if (!(chi > clo)) chi = clo + 1; }
    var rad = N > 3000 ? 1.5 : 2.5, bucket = new Int32Array(N);
    for (i = 0; i < N; i++) bucket[i] = !C ? 0 : isFinite(C[i]) ? 1 + Math.round(Math.min(1, Math.max(0, (C[i] - clo) / (chi - clo))) * (NC - 1)) : -1;
    for (var c = -1; c <= NC; c++) { pc.fillStyle = !C ? "#3465a4" : c < 0 ? cmap(NaN) : cmap((c - 1) / (NC - 1));
      for (i = 0; i < N; i++) if (bucket[i] === c) pc.fillRect(sx(SX[i], SXR, W) - rad, sy(SY[i], SYR, H) - rad, 2 * rad, 2 * rad); }
    CAPTION = (C ? "colour: " + $("colour").selectedOptions[0].textContent + " from " + fmt(clo) +
      " (purple) to " + fmt(chi) + " (yellow); grey: missing. " : "") + "Ringed: the selected star (red), its neighbours (orange).";
  }
  ctx.clearRect(0, 0, W, H); ctx.drawImage(POINTS, 0, 0);
  ctx.lineWidth = 2;
  for (var k = 0; k < K; k++) { var j = NB[sel * K + k]; ctx.strokeStyle = "#ff8c00"; ctx.beginPath();
    ctx.arc(sx(SX[j], SXR, W), sy(SY[j], SYR, H), 5, 0, 2 * Math.PI); ctx.stroke(); }
  ctx.strokeStyle = "#d62728"; ctx.lineWidth = 2.5; ctx.beginPath();
  ctx.arc(sx(SX[sel], SXR, W), sy(SY[sel], SYR, H), 7, 0, 2 * Math.PI); ctx.stroke();
  $("colourbar").textContent = CAPTION;
}
["xdim", "ydim", "colour"].forEach(function (id) { $(id).addEventListener("change", function () { drawScatter(); }); });
function pointPixel(i) { var c = $("scatter"); return [sx(SX[i], SXR, c.width), sy(SY[i], SYR, c.height)]; }
function pointAt(ev) {  // the point nearest the mouse, within 10 pixels, or -1
  var c = $("scatter"), x = canvasX(c, ev), y = canvasY(c, ev), best = -1, bd = 100;
  for (var i = 0; i < N; i++) { var dx = sx(SX[i], SXR, c.width) - x, dy = sy(SY[i], SYR, c.height) - y, d2 = dx * dx + dy * dy;
    if (d2 < bd) { bd = d2; best = i; } }
  return best; }
$("scatter").addEventListener("click", function (ev) { var i = pointAt(ev); if (i >= 0) select(i); });
$("scatter").addEventListener("mousemove", function (ev) { var i = pointAt(ev);
  $("hover").textContent = i < 0 ? "\u00a0" : nameOf(i) + ": " + labelRows(i).slice(0, 4).map(function (r) { return r[0] + " " + r[1]; }).join(", "); });

// ---- the selected star ---------------------------------------------------------
var thumbs = [];
function drawThumb(canvas, y) { var ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, lo = Infinity, hi = -Infinity, p;
  ctx.clearRect(0, 0, W, H); for (p = 0; p < P; p++) { var w = WAVE[p]; if (w >= zoom[0] && w <= zoom[1] && isFinite(y[p])) { lo = Math.min(lo, y[p]); hi = Math.max(hi, y[p]); } }
  if (!(hi > lo)) { lo -= 0.5; hi += 0.5; } ctx.strokeStyle = "#3465a4"; ctx.beginPath(); var pen = false;
  for (p = 0; p < P; p++) { if (!isFinite(y[p]) || WAVE[p] < zoom[0] || WAVE[p] > zoom[1]) { pen = false; continue; }
    var px = (WAVE[p] - zoom[0]) / (zoom[1] - zoom[0]) * W, py = H - 2 - (y[p] - lo) / (hi - lo) * (H - 4);
    if (pen) ctx.lineTo(px, py); else ctx.moveTo(px, py); pen = true; } ctx.stroke(); }
function labelRows(i) { var rows = [];
  LABELS.forEach(function (c) { rows.push([c.name, fmt(c.v[i]) + (c.unit ? " " + c.unit : "")]); });
  D.text.forEach(function (c) { rows.push([c.name, c.values[i]]); }); return rows; }
function select(i) {
  i = +i; if (!(i >= 0 && i < N)) return; sel = i; base = zOf(i); current = base.slice(); syncSliders();
  baseRecon = decode(base); var obs = observed(i);
  starSeries = obs ? [{y: obs, colour: "#222", label: "observed"}, {y: baseRecon, colour: "#c0392b", width: 1.3, label: "reconstruction"}]
    : [{y: baseRecon, colour: "#c0392b", width: 1.3, label: "reconstruction"}];
  $("star-title").textContent = nameOf(i) + " (row " + i + ")";
  $("star-note").textContent = obs ? "" : "The observed spectrum of this star is not stored in the page (max_spectra=" + D.spectra.max_spectra + "); its reconstruction is decoded.";
  var tb = $("star-labels"); tb.textContent = "";
  labelRows(i).forEach(function (r) { var tr = document.createElement("tr");
    r.forEach(function (v) { var td = document.createElement("td"); td.textContent = v; tr.appendChild(td); }); tb.appendChild(tr); });
  $("neighbours-title").textContent = "The " + K + " most similar spectra (" + D.neighbors.space + ")";
  var ol = $("neighbours"); ol.textContent = ""; thumbs = [];
  for (var k = 0; k < K; k++) { var j = NB[i * K + k], li = document.createElement("li");
    li.dataset.index = j; var cv = document.createElement("canvas"); cv.width = 170; cv.height = 36;
    var txt = document.createElement("span"); var lr = labelRows(j).slice(0, 4).map(function (r) { return r[0] + " " + r[1]; });
    txt.textContent = nameOf(j) + " \u2014 distance " + fmt(NBD[i * K + k]) + (lr.length ? "; " + lr.join(", ") : "");
    li.appendChild(cv); li.appendChild(txt); li.addEventListener("click", (function (jj) { return function () { select(jj); }; })(j));
    ol.appendChild(li); thumbs.push([cv, observed(j) || decode(zOf(j))]); }
  decoded = null; drawScatter(false); drawSpectra(); drawDecoded(); }

// ---- start ---------------------------------------------------------------------
$("wunit").textContent = UNIT;
$("wmin").addEventListener("change", function () { if ($("wmin").value !== "") setZoom($("wmin").value, zoom[1]); });
$("wmax").addEventListener("change", function () { if ($("wmax").value !== "") setZoom(zoom[0], $("wmax").value); });
$("zoom-reset").addEventListener("click", function () { setZoom(WFULL[0], WFULL[1]); });
zoomable($("star")); zoomable($("decoded"));
$("summary").textContent = N + " spectra, " + DIM + " latents, " + D.informative.length + " informative (MAD > " +
  D.threshold + "); sliders for z" + D.dims.join(", z") + "; similar spectra in the " + D.neighbors.space +
  (D.neighbors.space === "latent" ? " space" : "") + "; " + ROWS.length + " observed spectra stored.";
var start = 0, bestd = Infinity, med = D.dims.map(function (d) { var v = []; for (var i = 0; i < N; i++) v.push(Z[i * DIM + d]);
  v.sort(function (a, b) { return a - b; }); return v[Math.floor(N / 2)]; });
for (var s = 0; s < N; s++) { var dist = 0; D.dims.forEach(function (d, m) { var e = Z[s * DIM + d] - med[m]; dist += e * e; });
  if (dist < bestd) { bestd = dist; start = s; } }
setZoom(WFULL[0], WFULL[1]);
select(start);
window.explorer = {
  decode: function (z) { return Array.from(decode(z)); },
  currentSpectrum: function () { if (pending) drawDecoded(); return Array.from(decoded); },
  currentLatent: function () { return current.slice(); },
  setLatent: function (d, v) { var s = sliders[d]; if (!s) throw new Error("no slider for latent " + d);
    s[0].value = v; s[0].dispatchEvent(new Event("input")); },
  select: select, selected: function () { return sel; },
  neighbors: function () { return Array.prototype.map.call($("neighbours").children, function (li) { return +li.dataset.index; }); },
  pointPixel: pointPixel, setZoom: setZoom, zoom: function () { return zoom.slice(); },
  firstDrawMs: performance.now()
};
})();
"""  # noqa: E501 - the page's JavaScript, kept as written
