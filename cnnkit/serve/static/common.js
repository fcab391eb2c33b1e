// Shared by the three pages: the JSON API, colours, small drawing helpers.
// Every number is computed by the server (cnnkit); this file only draws.
"use strict";

const cnn = {};

cnn.api = async function (path, body) {
  const options = body === undefined ? {} :
    {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
};

cnn.upload = async function (file) {
  const response = await fetch("/api/upload", {method: "POST", body: file});
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
};

cnn.showError = function (err) {
  const box = document.getElementById("error");
  if (err) { box.textContent = String(err.message || err); box.hidden = false; }
  else box.hidden = true;
};

// Signed value v on the scale ±bound -> [r, g, b]: blue negative, white 0, red positive.
// tests/test_serve_browser.py repeats this formula to check the drawn pixels.
cnn.signedColour = function (v, bound) {
  const t = Math.max(-1, Math.min(1, bound > 0 ? v / bound : 0));
  const fade = Math.round(255 * (1 - Math.abs(t)));
  return t >= 0 ? [255, fade, fade] : [fade, fade, 255];
};

cnn.greyColour = function (v) {
  const g = Math.round(255 * Math.max(0, Math.min(1, v)));
  return [g, g, g];
};

// Draw a 2-D array (rows of numbers) on a canvas, one canvas pixel per value.
cnn.drawArray = function (canvas, rows, colour) {
  const h = rows.length, w = rows[0].length;
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(w, h);
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) {
    const [r, g, b] = colour(rows[i][j]);
    const k = 4 * (i * w + j);
    image.data[k] = r; image.data[k + 1] = g; image.data[k + 2] = b; image.data[k + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
};

// An RGB image (3, H, W) or grey (1, H, W) in [0, 1] on a canvas.
cnn.drawImage = function (canvas, chw) {
  if (chw.length !== 3) { cnn.drawArray(canvas, chw[0], cnn.greyColour); return; }
  const h = chw[0].length, w = chw[0][0].length;
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(w, h);
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) {
    const k = 4 * (i * w + j);
    for (let c = 0; c < 3; c++) image.data[k + c] = Math.round(255 * chw[c][i][j]);
    image.data[k + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
};

// The (row, col) of the array pixel under a mouse event on a canvas scaled by CSS
// (offsetX/Y and clientWidth/Height both exclude the border).
cnn.pixelAt = function (canvas, event) {
  const col = Math.floor(event.offsetX / canvas.clientWidth * canvas.width);
  const row = Math.floor(event.offsetY / canvas.clientHeight * canvas.height);
  return [Math.max(0, Math.min(canvas.height - 1, row)), Math.max(0, Math.min(canvas.width - 1, col))];
};

// Outline array cells rows[0]..rows[1] × cols[0]..cols[1] of a canvas with a positioned box.
cnn.placeBox = function (box, canvas, rows, cols) {
  const sx = canvas.clientWidth / canvas.width, sy = canvas.clientHeight / canvas.height;
  const style = box.style;
  style.left = (canvas.offsetLeft + 1 + cols[0] * sx) + "px";
  style.top = (canvas.offsetTop + 1 + rows[0] * sy) + "px";
  style.width = ((cols[1] - cols[0] + 1) * sx) + "px";
  style.height = ((rows[1] - rows[0] + 1) * sy) + "px";
  box.hidden = false;
};

cnn.format = function (v, digits) {
  const text = Number(v).toFixed(digits === undefined ? 3 : digits);
  return text === "-0.000" ? "0.000" : text;
};

cnn.fillTable = function (table, rows, digits) {
  table.replaceChildren(...rows.map(row => {
    const tr = document.createElement("tr");
    for (const v of row) {
      const td = document.createElement("td");
      td.textContent = cnn.format(v, digits);
      tr.appendChild(td);
    }
    return tr;
  }));
};

// The image choices both the kernel and the model page offer, from /api/info.
cnn.fillSources = function (select, info) {
  const options = info.samples.map(name => ["sample:" + name, "sample: " + name]);
  for (const [name, d] of Object.entries(info.datasets))
    options.push([name, `${name} test image (${d.count})`]);
  select.replaceChildren(...options.map(([value, text]) => new Option(text, value)));
};

// The request's image object for a source select, an index box and the last upload id.
cnn.imageSpec = function (source, index, uploadId) {
  if (source === "upload") return {source: "upload", id: uploadId};
  if (source.startsWith("sample:")) return {source: "sample", name: source.slice(7)};
  return {source: source, index: Number(index) || 0};
};

cnn.ready = new Promise(resolve => document.addEventListener("DOMContentLoaded", resolve));
cnn.info = cnn.ready.then(() => cnn.api("/api/info"));

cnn.ready.then(() => {
  const tabs = document.querySelectorAll(".tab");
  const show = name => {
    for (const tab of tabs) tab.classList.toggle("active", tab.dataset.tab === name);
    for (const page of document.querySelectorAll(".page")) page.hidden = page.id !== "page-" + name;
    document.body.dataset.tab = name;
  };
  for (const tab of tabs) tab.addEventListener("click", () => { show(tab.dataset.tab); location.hash = tab.dataset.tab; });
  show(["kernel", "shape", "model"].includes(location.hash.slice(1)) ? location.hash.slice(1) : "kernel");
});
