// Shape playground: the output size by cnnkit.conv_output_shape, and the window sliding over
// the padded input while each output cell fills in.
"use strict";

(function () {
  const $ = id => document.getElementById(id);
  const names = ["size", "kernel", "stride", "padding", "dilation"];
  const anim = {shape: null, step: 0, playing: true};
  const GAP = 60;
  let CELL = 24;

  function params() {
    const p = {};
    for (const name of names) p[name] = Number($("s-" + name).value);
    if ($("s-same").checked) p.padding = "same";
    return p;
  }

  let version = 0;
  async function update() {
    for (const name of names) $(`s-${name}-v`).textContent = $("s-" + name).value;
    $("s-padding").disabled = $("s-same").checked;
    const mine = ++version;
    try {
      const shape = await cnn.api("/api/shape", params());
      if (mine !== version) return;
      anim.shape = shape; anim.step = 0;
      $("s-formula").textContent = shape.formula;
      $("s-error").hidden = true;
      document.body.dataset.shapeOutput = String(shape.output);
    } catch (err) {
      if (mine !== version) return;
      anim.shape = null;
      $("s-formula").textContent = "";
      $("s-error").textContent = err.message; $("s-error").hidden = false;
      document.body.dataset.shapeOutput = "error";
    }
    paint();
  }

  function cell(ctx, x, y, fill, stroke) {
    ctx.fillStyle = fill; ctx.fillRect(x, y, CELL - 2, CELL - 2);
    if (stroke) { ctx.strokeStyle = stroke; ctx.lineWidth = 2; ctx.strokeRect(x, y, CELL - 2, CELL - 2); }
  }

  function hatch(ctx, x, y) {
    ctx.strokeStyle = "#bbb"; ctx.lineWidth = 1;
    ctx.beginPath();
    for (let d = 4; d < 2 * CELL; d += 6) { ctx.moveTo(x + Math.max(0, d - CELL), y + Math.min(d, CELL - 2)); ctx.lineTo(x + Math.min(d, CELL - 2), y + Math.max(0, d - CELL)); }
    ctx.stroke();
  }

  function paint() {
    const canvas = $("s-canvas"), ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const s = anim.shape;
    if (!s) return;
    const [lo, hi] = s.pad, n = s.size + lo + hi, out = s.output;
    CELL = Math.max(8, Math.min(36, Math.floor((canvas.width - GAP - 8) / (n + out)),
                                Math.floor((canvas.height - 50) / Math.max(n, out))));
    const total = out * out, k = Math.min(anim.step, total - 1);
    const oi = Math.floor(k / out), oj = k % out;
    const taps = new Set();
    for (const r of s.taps[oi]) for (const c of s.taps[oj]) taps.add(r * n + c);
    ctx.font = "13px system-ui"; ctx.fillStyle = "#333";
    ctx.fillText(`padded input ${n}×${n}`, 4, 14);
    for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) {
      const x = 4 + c * CELL, y = 22 + r * CELL;
      const padding = r < lo || c < lo || r >= lo + s.size || c >= lo + s.size;
      cell(ctx, x, y, padding ? "#eee" : "#cde", null);
      if (padding) hatch(ctx, x, y);
      if (taps.has(r * n + c)) cell(ctx, x, y, "rgba(255,136,0,0.75)", "#c60");
    }
    const left = 4 + Math.max(n * CELL, ctx.measureText(`padded input ${n}×${n}`).width) + GAP;
    ctx.fillStyle = "#333";
    ctx.fillText(`output ${out}×${out}`, left, 14);
    for (let r = 0; r < out; r++) for (let c = 0; c < out; c++) {
      const index = r * out + c, x = left + c * CELL, y = 22 + r * CELL;
      cell(ctx, x, y, index < k ? "#8b8" : index === k ? "#f80" : "#f4f4f4", index === k ? "#c60" : null);
    }
    ctx.fillStyle = "#333";
    ctx.fillText(`output (${oi}, ${oj}) ← taps rows ${s.taps[oi].join(",")} × cols ${s.taps[oj].join(",")} of the padded input`, 4, 22 + Math.max(n, out) * CELL + 18);
  }

  function tick() {
    if (anim.playing && anim.shape) {
      anim.step = (anim.step + 1) % (anim.shape.output * anim.shape.output + 2);
      paint();
    }
  }

  cnn.ready.then(() => {
    for (const name of names) $("s-" + name).addEventListener("input", update);
    $("s-same").addEventListener("change", update);
    $("s-play").addEventListener("click", () => {
      anim.playing = !anim.playing;
      $("s-play").textContent = anim.playing ? "pause" : "play";
    });
    setInterval(tick, 450);
    update();
  });
})();
