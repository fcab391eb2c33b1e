// Kernel playground: a kernel on an image, and any output pixel as window ⊙ kernel → sum.
"use strict";

(function () {
  const $ = id => document.getElementById(id);
  const state = {kernel: [[0, 0, 0], [0, 1, 0], [0, 0, 0]], cell: [1, 1], uploadId: null,
                 result: null, pinned: null, version: 0};

  function imageSpec() {
    return cnn.imageSpec($("k-source").value, $("k-index").value, state.uploadId);
  }

  function request(extra) {
    return Object.assign({image: imageSpec(), kernel: state.kernel,
                          convolve: $("k-convolve").checked}, extra || {});
  }

  function renderGrid() {
    const n = state.kernel.length, grid = $("k-grid");
    grid.style.gridTemplateColumns = `repeat(${n}, auto)`;
    const inputs = [];
    for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) {
      const input = document.createElement("input");
      input.type = "number"; input.step = "any";
      input.value = String(state.kernel[r][c]);
      input.dataset.r = r; input.dataset.c = c;
      input.classList.toggle("selected", r === state.cell[0] && c === state.cell[1]);
      input.addEventListener("focus", () => selectCell(r, c));
      input.addEventListener("input", () => {
        const v = Number(input.value);
        if (input.value.trim() === "" || !Number.isFinite(v)) return;
        state.kernel[r][c] = v;
        syncSlider();
        refresh();
      });
      inputs.push(input);
    }
    grid.replaceChildren(...inputs);
    syncSlider();
  }

  function selectCell(r, c) {
    state.cell = [r, c];
    for (const input of $("k-grid").children)
      input.classList.toggle("selected", Number(input.dataset.r) === r && Number(input.dataset.c) === c);
    syncSlider();
  }

  function syncSlider() {
    const [r, c] = state.cell;
    $("k-cell-name").textContent = `(${r}, ${c})`;
    $("k-slider").value = state.kernel[r][c];
    $("k-slider-value").textContent = String(state.kernel[r][c]);
  }

  function setKernel(rows) {
    state.kernel = rows.map(row => row.slice());
    const n = rows.length;
    $("k-size").value = String(n);
    state.cell = [Math.floor(n / 2), Math.floor(n / 2)];
    renderGrid();
    refresh();
  }

  function resize(n) {
    const old = state.kernel, m = old.length, off = (n - m) / 2;
    const rows = [];
    for (let r = 0; r < n; r++) {
      rows.push([]);
      for (let c = 0; c < n; c++) {
        const rr = r - off, cc = c - off;
        rows[r].push(rr >= 0 && rr < m && cc >= 0 && cc < m ? old[rr][cc] : 0);
      }
    }
    setKernel(rows);
  }

  let timer = null;
  function refresh() {
    clearTimeout(timer);
    timer = setTimeout(draw, 60);
  }

  async function draw() {
    const version = ++state.version;
    let result;
    try { result = await cnn.api("/api/filter", request()); cnn.showError(null); }
    catch (err) { cnn.showError(err); return; }
    if (version !== state.version) return;  // a newer request is on its way
    state.result = result;
    const h = result.input.length, w = result.input[0].length;
    $("k-input-shape").textContent = `${h}×${w}`;
    cnn.drawArray($("k-input"), result.input, cnn.greyColour);
    const bound = result.bound > 0 ? result.bound : 1;
    cnn.drawArray($("k-output"), result.output, v => cnn.signedColour(v, bound));
    $("k-scale-low").textContent = "−" + cnn.format(bound, 2);
    $("k-scale-high").textContent = "+" + cnn.format(bound, 2);
    $("k-mode").textContent = (result.convolve ? "convolution" : "correlation") + ", 'same' zero padding";
    document.body.dataset.kernelVersion = String(version);
    if (state.pinned) explain(...state.pinned);
  }

  function drawScale() {
    const canvas = $("k-scale"), ctx = canvas.getContext("2d");
    for (let x = 0; x < canvas.width; x++) {
      const [r, g, b] = cnn.signedColour(2 * x / (canvas.width - 1) - 1, 1);
      ctx.fillStyle = `rgb(${r},${g},${b})`;
      ctx.fillRect(x, 0, 1, canvas.height);
    }
  }

  let pixelVersion = 0;
  async function explain(row, col) {
    const version = ++pixelVersion;
    let p;
    try { p = await cnn.api("/api/pixel", request({row, col})); }
    catch (err) { cnn.showError(err); return; }
    if (version !== pixelVersion) return;
    const n = state.kernel.length;
    cnn.fillTable($("bd-window"), p.window, 3);
    cnn.fillTable($("bd-kernel"), p.kernel, 3);
    cnn.fillTable($("bd-products"), p.products, 3);
    $("bd-kernel-caption").textContent = p.flipped ? "kernel, flipped (convolution)" : "kernel";
    $("bd-sum").textContent = cnn.format(p.sum, 4);
    $("bd-value").textContent = cnn.format(p.value, 4);
    const [r, g, b] = cnn.signedColour(p.value, p.bound > 0 ? p.bound : 1);
    $("bd-swatch").style.background = `rgb(${r},${g},${b})`;
    $("bd-where").textContent = `(row ${row}, col ${col})`;
    const lo = Math.floor((p.flipped ? n : n - 1) / 2);
    cnn.placeBox($("k-window-box"), $("k-input"), [row - lo, row - lo + n - 1], [col - lo, col - lo + n - 1]);
    cnn.placeBox($("k-pixel-box"), $("k-output"), [row, row], [col, col]);
    const panel = $("k-breakdown");
    panel.dataset.row = row; panel.dataset.col = col; panel.dataset.version = String(version);
  }

  async function useUpload() {
    const file = $("k-upload").files[0];
    if (!file) return;
    try {
      const up = await cnn.upload(file);
      state.uploadId = up.id;
      const select = $("k-source");
      if (![...select.options].some(o => o.value === "upload")) select.add(new Option("uploaded image", "upload"));
      select.value = "upload";
      cnn.showError(null);
      refresh();
    } catch (err) { cnn.showError(err); }
  }

  cnn.info.then(info => {
    cnn.fillSources($("k-source"), info);
    const presets = $("k-preset");
    presets.replaceChildren(new Option("(custom)", ""),
      ...Object.keys(info.presets).map(name => new Option(name, name)));
    presets.addEventListener("change", () => { if (presets.value) setKernel(info.presets[presets.value]); });
    $("k-size").addEventListener("change", () => resize(Number($("k-size").value)));
    $("k-source").addEventListener("change", () => {
      $("k-index-label").hidden = $("k-source").value.startsWith("sample:") || $("k-source").value === "upload";
      refresh();
    });
    $("k-index-label").hidden = true;
    $("k-index").addEventListener("input", refresh);
    $("k-convolve").addEventListener("change", refresh);
    $("k-upload").addEventListener("change", useUpload);
    $("k-slider").addEventListener("input", () => {
      const [r, c] = state.cell, v = Number($("k-slider").value);
      state.kernel[r][c] = v;
      $("k-slider-value").textContent = String(v);
      const input = $("k-grid").querySelector(`input[data-r="${r}"][data-c="${c}"]`);
      if (input) input.value = String(v);
      $("k-preset").value = "";
      refresh();
    });
    $("k-grid").addEventListener("input", () => { $("k-preset").value = ""; });
    const output = $("k-output");
    output.addEventListener("mousemove", e => { if (!state.pinned && state.result) explain(...cnn.pixelAt(output, e)); });
    output.addEventListener("click", e => {
      const where = cnn.pixelAt(output, e);
      state.pinned = state.pinned && state.pinned[0] === where[0] && state.pinned[1] === where[1] ? null : where;
      explain(...where);
    });
    drawScale();
    presets.value = "sobel-left";
    setKernel(info.presets["sobel-left"]);
  }).catch(cnn.showError);
})();
