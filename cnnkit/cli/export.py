"""``cnnkit export``: a saved model (``model.safetensors`` of a run) as an ONNX file."""
from __future__ import annotations

from .common import CommandError, one_line, positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="write a saved model as ONNX (for onnxruntime and other runtimes)",
        description="Rebuild the model stored in MODEL (a model.safetensors or "
                    "checkpoint.safetensors written by 'cnnkit train') and write it as an ONNX "
                    "graph with a symbolic batch dimension. Needs the onnx extra: "
                    "pip install 'cnnkit[onnx]'.")
    parser.add_argument("model", metavar="MODEL", help="model or checkpoint file")
    parser.add_argument("-o", "--output", required=True, metavar="FILE.onnx",
                        help="the ONNX file to write")
    parser.add_argument("--opset", type=positive_int, default=None,  # its range: onnx.export
                        help="ONNX opset version (default 20)")
    parser.add_argument("--input-shape", metavar="C,H,W",
                        help="one example's shape (default: the shape the model was trained on)")
    parser.set_defaults(run=run)


def run(args) -> int:
    from .evaluate import load_model_or_fail

    try:
        from .. import onnx as cnnkit_onnx
        cnnkit_onnx.require_onnx()
    except ImportError as err:
        raise CommandError(one_line(err)) from err
    model, config = load_model_or_fail(args.model, args.input_shape)
    shape = tuple(config["input_shape"])
    opset = cnnkit_onnx.DEFAULT_OPSET if args.opset is None else args.opset
    try:
        proto = cnnkit_onnx.export(model, shape, args.output, opset=opset)
    except ValueError as err:
        raise CommandError(one_line(err)) from err
    outputs = [d.dim_param or d.dim_value for d in
               proto.graph.output[0].type.tensor_type.shape.dim]
    print(f"wrote {args.output}: opset {opset}, input (N, {', '.join(map(str, shape))}) -> "
          f"output ({', '.join(map(str, outputs))}), {len(proto.graph.node)} nodes")
    return 0
