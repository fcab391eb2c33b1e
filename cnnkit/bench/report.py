"""Tables and JSON for the benchmark results."""
import json
import math

from ..io.atomic import atomic_write_text


def _fmt(v, spec):
    return "—" if v is None else format(v, spec)


def layer_table(rows, sgemm, peak):
    """Markdown table of the layer rows; ``sgemm`` and ``peak`` (GFLOP/s, all threads: NumPy's
    square matrix product and the FMA loop of ``peak.py``) are the two ceilings each rate is
    shown against. "BLAS % of peak" is BLAS's own rate on the layer's products, laid out
    beforehand (``blas_products``), against the same peak."""
    lines = ["| layer | pass | algorithm | cnnkit ms | PyTorch ms | ratio | cnnkit GFLOP/s | "
             "% of sgemm | % of peak | BLAS % of peak |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        shares = [_fmt(rate / ceiling * 100 if rate else None, ".0f")
                  for rate, ceiling in ((r.get("cnnkit_gflops"), sgemm),
                                        (r.get("cnnkit_gflops"), peak),
                                        (r.get("blas_gflops"), peak))]
        lines.append(f"| {r['name']} | {r['mode']} | {r.get('algorithm') or '—'} | "
                     f"{r['cnnkit_ms']:.2f} | {r['torch_ms']:.2f} | {r['ratio']:.2f} | "
                     f"{_fmt(r.get('cnnkit_gflops'), '.1f')} | {' | '.join(shares)} |")
    return "\n".join(lines)


def signal_table(rows):
    lines = ["| case | method | cnnkit ms | scipy ms | PyTorch ms | ratio to faster | "
             "PyTorch / cnnkit |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['method']} | {r['cnnkit_ms']:.2f} | {r['scipy_ms']:.2f} "
                     f"| {r['torch_ms']:.2f} | {r['ratio']:.2f} | {1 / r['ratio_vs_torch']:.1f}× |")
    return "\n".join(lines)


def e2e_table(rows):
    lines = ["| model | batch | cnnkit images/s | PyTorch images/s | ratio (speed) | "
             "cnnkit peak MiB | PyTorch peak MiB | memory ratio | cold: cnnkit / PyTorch MiB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        cold = (f"{r['cnnkit_cold_peak_mib']:.0f} / {r['torch_cold_peak_mib']:.0f} "
                f"({r['cnnkit_cold_peak_mib'] / r['torch_cold_peak_mib']:.2f})"
                if "cnnkit_cold_peak_mib" in r else "—")
        lines.append(f"| {r['name']} | {r['batch_size']} | {r['cnnkit_images_per_s']:.0f} | "
                     f"{r['torch_images_per_s']:.0f} | "
                     f"{r['cnnkit_images_per_s'] / r['torch_images_per_s']:.2f} | "
                     f"{r['cnnkit_peak_mib']:.0f} | {r['torch_peak_mib']:.0f} | "
                     f"{r['cnnkit_peak_mib'] / r['torch_peak_mib']:.2f} | {cold} |")
    latency = [r for r in rows if "cnnkit_one_image_ms" in r]
    if latency:
        lines += ["", "| model | one image, evaluation: cnnkit ms | PyTorch ms | ratio (time) |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {r['name']} | {r['cnnkit_one_image_ms']:.3f} | "
                  f"{r['torch_one_image_ms']:.3f} | "
                  f"{r['cnnkit_one_image_ms'] / r['torch_one_image_ms']:.2f} |" for r in latency]
    return "\n".join(lines)


def summary(layer_rows):
    both = [r["ratio"] for r in layer_rows if r["mode"] == "fwd+bwd"]
    if not both:
        return {}
    worst = max((r for r in layer_rows if r["mode"] == "fwd+bwd"), key=lambda r: r["ratio"])
    return {"geomean_ratio_fwd_bwd": math.exp(sum(map(math.log, both)) / len(both)),
            "worst_layer_fwd_bwd": worst["name"], "worst_ratio_fwd_bwd": worst["ratio"]}


def write_json(path, payload):
    atomic_write_text(path, json.dumps(payload, indent=2))
