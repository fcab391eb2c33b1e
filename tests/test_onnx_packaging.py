"""cnnkit works without the onnx extra; the ONNX features say which extra to install."""
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import sys
    sys.modules["onnx"] = sys.modules["onnxruntime"] = None   # as if not installed
    import cnnkit, cnnkit.io, cnnkit.models, cnnkit.onnx
    from cnnkit import cli
    try:
        cnnkit.onnx.export(cnnkit.nn.ReLU(), (3,))
    except ImportError as err:
        print("export:", err)
    sys.exit(cli.main(["export", "missing.safetensors", "-o", "m.onnx"]))
""")


def test_import_and_cli_without_onnx(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert "export: onnx is not installed" in done.stdout, done.stderr
    assert "pip install 'cnnkit[onnx]'" in done.stdout
    assert done.returncode == 1
    assert done.stderr.strip().startswith("cnnkit export: error: onnx is not installed")
    assert "cnnkit[onnx]" in done.stderr and "Traceback" not in done.stderr
