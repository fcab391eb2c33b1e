"""Every threshold and cost constant the kernels decide by, with its meaning, unit and default.

The defaults were measured on the project's machines (an AMD EPYC and an Intel Xeon, both
AVX-512, and AVX2 by emulation on them; see BENCHMARKS.md); ``cnnkit tune`` re-measures the
ones marked ``measured_by`` on this machine (see ``cnnkit.tuning.calibrate``). A constant
with ``measured_by=None`` is not re-measured: its ``meaning`` says why, and the calibration
prints it as 'default kept'.
"""
import dataclasses

TUNE = "cnnkit tune"  # also: python -m cnnkit.bench --calibrate
BLOCKS = "python -m cnnkit.bench.tiles --blocks"
PLANAR_INPUT = "python -m cnnkit.bench.planar_input"
VOLUME_STENCIL = "python -m cnnkit.bench.volume_stencil"
SUBPIXEL = "python -m cnnkit.bench.subpixel"
TAP_BLOCKS = "python -m cnnkit.bench.depthwise --tap-blocks"


@dataclasses.dataclass(frozen=True)
class Constant:
    name: str
    default: float
    unit: str
    meaning: str
    low: float            # the valid range, inclusive: a cached value outside it is refused
    high: float
    integer: bool = False
    measured_by: str = None   # the command that re-measures it, or None (see ``meaning``)


_NOT_TIMED = " Not re-measured: a rule read off the benchmark's layers, not a timing model."

_TABLE = [
    # ----------------------------------------------------------------- conv algorithm rules
    Constant("implicit_fft_cost_factor", 20.0, "ratio",
             "The FFT takes a stride-1 float32 pass from the implicit GEMM only where its "
             "estimate (fft.cost_ratio: FFT work over direct work, counted in the direct sum's "
             "multiply-adds) times this factor is below fft_max_cost_ratio: the implicit GEMM's "
             "multiply-adds cost that much less than the direct sums the estimate's units "
             "stand for. Measured as the geometric mean, over large-kernel layers' forward "
             "passes, of (FFT time / implicit GEMM time) / cost_ratio: 2 threads, 17.6 and "
             "28.5 on AVX-512, 18.6 and 18.7 on AVX2 (BENCHMARKS.md, \"Large kernels on the "
             "implicit GEMM\"). At least 1: the implicit GEMM's multiply-adds are not dearer than "
             "the direct sums the estimate counts.", 1.0, 1e4, measured_by=TUNE),
    Constant("implicit_min_taps", 16, "multiply-adds per output",
             "The implicit GEMM is chosen (forward: C·prod(kernel); input gradient: "
             "K·prod(kernel)) from this many terms per output on; below, each tile is mostly "
             "stores. lenet_c1's forward (25 terms, 32 outputs) ran 1.27 ms against 2.0 on the "
             "row correlation and 3.1 on im2col, one core, AVX-512 (1.7 against 2.5 and 2.9 on "
             "AVX2); the row correlation keeps one-channel layers up to rows_forward_max_taps, "
             "the same 16. Thinner products stay on it from implicit_thin_min_outputs "
             "output values on." + _NOT_TIMED, 1, 1 << 20, integer=True),
    Constant("implicit_thin_min_outputs", 196608, "output values of one group's product "
             "(N·K/G·prod(out); an input gradient's N·C/G·prod(padded))",
             "A forward pass or stride-1 input gradient with fewer than implicit_min_taps "
             "terms per output runs on the implicit GEMM from this many output values on, "
             "unless it is a 1 × 1 layer that shift's rule takes (one BLAS product per image on "
             "the arrays as they are). Else im2col (a copy and a thin product) or Winograd "
             "(thin products) cost more there; below, their lower fixed cost wins. Measured as "
             "the crossover against im2col of a 4 → 64 channel 1 × 1 layer at stride 2 on 8 "
             "images: 196 608 on AVX-512, 98 304 on AVX2, twice each (BENCHMARKS.md, \"Thin "
             "products on the implicit GEMM\").", 1, 1 << 40, integer=True, measured_by=TUNE),
    Constant("implicit_input_gemm_min_depth", 8, "output channels per input channel and "
             "lane used (K / (C · lane use))",
             "im2col takes a 3-D stride-1 float32 groups-1 input gradient of fewer input "
             "channels than a vector's lanes ahead of every other algorithm (gemm.takes_input) "
             "where "
             "the implicit GEMM's planar strips would use implicit_input_gemm_max_lane_use of "
             "their lanes or less and K / (C · lane use) is this or more. Both are fitted "
             "together on grids of such layers (1-D to 3-D, 1 to 8 input channels, 16 to 256 "
             "outputs), implicit GEMM against im2col, as the pair whose choices lose the least "
             "time, 2 threads, on the 3-D layers: lane use 0.85 and depth 8 on AVX-512 (264 "
             "layers), 0.85 and 4 on AVX2 (234) (BENCHMARKS.md, \"Deep input gradients of few "
             "channels on im2col\").",
             1.0, 1e6, measured_by=PLANAR_INPUT),
    Constant("implicit_input_gemm_max_column_bytes", 1 << 28, "bytes",
             "im2col takes a deep 3-D input gradient of few input channels "
             "(implicit_input_gemm_min_depth) only while its columns, C·prod(kernel) × "
             "N·prod(out) float32, fit in this many bytes: the implicit GEMM it replaces "
             "allocates none. A bound on memory, above the largest columns measured (172 MiB)."
             + _NOT_TIMED, 1, 1 << 40, integer=True),
    Constant("implicit_input_gemm_max_lane_use", 0.85, "share of the planar tiles' lanes",
             "See implicit_input_gemm_min_depth, fitted with it: only input gradients whose "
             "planar strips use this share of their lanes or less go to im2col (padding wide "
             "against the map); 1-D layers ran faster on the planar tiles however deep (1 → 256 "
             "channels on 1024-sample signals: 0.67–0.79 of im2col's time), and 2-D ones gained "
             "less and lost on small maps, so neither is claimed.",
             0.0, 1.0,
             measured_by=PLANAR_INPUT),
    Constant("implicit_subpixel_min_terms", 512, "multiply-adds per output",
             "A strided input gradient with fewer input channels than one vector's lanes is "
             "one implicit GEMM over all phases (``kernels/conv/strided_input.py``) from this "
             "many terms per output on (K · the phases' union of shifts), else im2col + "
             "col2im, unless the product's share of taps takes it anyway "
             "(implicit_subpixel_min_share). 2 threads, AVX-512 and AVX2: 11×11 at stride 4, "
             "C = 3, K = 64 (576 terms) 7.2 against 9.4 and 9.0 against 11.6 ms; 7×7 at "
             "stride 2, C = 3, K = 64 (1024 terms) 13.7 against 22.5 and 20.4 against 25.7; "
             "5×5 at stride 2, C = 1, K = 32 (288 terms) 0.33 against 0.32; 3×3 at stride 2, "
             "C = 8, K = 32 (128 terms) 1.02 against 0.81. Its 1-D layers, printed by "
             + SUBPIXEL + ": below it, small ones on 2 or 4 channels ran up to 2.2 times as "
             "long over all phases.", 1, 1 << 20, integer=True, measured_by=SUBPIXEL),
    Constant("implicit_subpixel_min_share", 0.66, "taps / terms",
             "A strided 2-D input gradient with fewer input channels than one vector's lanes "
             "(where the windows' fold does not take it) is one implicit GEMM over all phases, "
             "whatever its terms, where the kernel's taps are at least this share of that "
             "product's terms (the rest are zero weights: the shifts a phase lacks): 5×5 "
             "(25 of 36) and wider kernels at stride 2, not 3×3 (9 of 16); a 3-D one is, "
             "whatever its share. " + SUBPIXEL + " prints both against im2col + col2im: 2 "
             "threads, AVX-512, 2-D 5×5 and 7×7 at stride 2 on 2 to 12 channels took "
             "0.17–0.93 of im2col's time, 3×3 0.35–1.18 (over 1 on 2 and 4 channels), 3-D "
             "3×3×3 and 5×5×5 0.12–0.95 (BENCHMARKS.md, \"Strided input gradients of few "
             "channels over all phases by their share of taps\").", 0.0, 1.0, measured_by=SUBPIXEL),
    Constant("implicit_fold_min_gain", 1.15, "× (multiply-adds)",
             "A strided 1-D or 2-D input gradient of fewer input channels (per group) than a "
             "vector's lanes folds its windows' columns into dx (``kernels/conv/"
             "window_fold.py``) where the product over all phases would run this many times "
             "its multiply-adds or more (``window_fold.gain``: the lanes or rows that product "
             "idles and the zero weights of the shifts a phase lacks, against the fold's own "
             "rounding). The largest value, 2²⁰, turns the fold off. Measured by timing both "
             "on layers of several gains, 2 threads, AVX-512 and AVX2 (BENCHMARKS.md, "
             "\"Strided input gradients of few channels: the windows folded\"): the fold "
             "lost by 18–19 % at gains up to 1.00, won by 2–3 % on AlexNet's first layer "
             "(1.22–1.23) and by 23–74 % at the gains of 1.27–1.94 measured. On the fold's "
             "own tile (``cpu.Tiles.fold``; BENCHMARKS.md, \"The windows' fold on a tile of "
             "its own\"), two runs on each ISA: it lost by 7–25 % at gains up to 1.00, won by "
             "4–9 % on AlexNet's first layer (1.23–1.24) and by 24–65 % at gains of 1.34–2.00. "
             "``cnnkit tune`` does not time it, since one layer's timing read 0.67–0.95 in "
             "three runs.",
             0.5, 1 << 20,
             measured_by="python -m cnnkit.bench.window_fold"),
    Constant("implicit_fold_chunk_bytes", 1 << 18, "bytes",
             "The windows' columns of a chunk of positions and the chunk of dy packed for the "
             "product, which the fold then reads back (``kernels/window_fold_numba.py``), "
             "meant to stay in L2. AlexNet's first layer's input gradient, 2 threads, AVX-512, "
             "ms, at 4, 32, 64, 128, 256 and 512 KB: 5.37, 5.28, 5.37, 5.21, 4.92 and 4.93 (1, "
             "1, 1, 2, 5 and 10 strips of 64 positions); ResNet's stem 5.16, 5.15, 4.77, "
             "4.71, 4.48 and 4.43. On the fold's own tile (5 × 80 on AVX-512: 4 strips at "
             "256 KB), at 128 KB, 256 KB, 512 KB, 1 MB and 2 MB: AlexNet's 4.95, 4.62, 4.62, "
             "4.61 and 4.98 (a second run 4.61, 4.38, 4.31, 4.40 and 4.68), the stem's 4.24, "
             "4.02, 3.93, 3.97 and 4.37, a 3 × 3 stride-2 layer's of 3 channels 3.47, 3.43, "
             "3.49, 3.65 and 4.37." + _NOT_TIMED, 1 << 12, 1 << 26, integer=True),
    Constant("implicit_empty_phases_max_terms", 256, "multiply-adds per output (K)",
             "A strided input gradient whose kernel leaves phases of dx that no tap reaches "
             "with its taps apart (a 1×1 layer at stride 2), or whose dilation does (3 × 3 at "
             "stride 2 and dilation 2), of a vector of input channels or more, runs on the "
             "implicit GEMM, one product per phase (``kernels/conv/strided_input.py``), up to "
             "this many output channels K (each product's terms), else im2col + col2im, "
             "whose BLAS product is faster alone for large K (the figures: "
             "``conv.implicit._strided_input_wins``; BENCHMARKS.md, \"Strided input "
             "gradients whose taps lie apart\", \"Dilated strided input gradients per "
             "phase\")." + _NOT_TIMED,
             0, 1 << 20, integer=True),
    Constant("implicit_planar_max_terms_per_output", 0.5, "terms per output channel",
             "The implicit GEMM's planar orientation is taken for products with at most this "
             "many terms (C·prod(kernel)) per output channel, and for fewer output channels "
             "than one vector's lanes (compared on both ISAs by python -m "
             "cnnkit.bench.orientation: 256 outputs of 64 terms ran 1.2-1.6× faster planar, "
             "128 of 128 and 32 of 25 within 15 % either way)." + _NOT_TIMED,
             0.0, 1e6),
    Constant("implicit_planar_1x1_min_positions", 2048, "output positions per image",
             "A stride-1 1×1 product (a forward pass, or the input gradient's) with at least "
             "this many positions per image runs planar, unless a deep one runs per image "
             "(implicit_large_map_min_terms_per_output): channels-last rows of such an image "
             "outgrow the cache between its tap blocks, while a planar strip's tile keeps its "
             "sums in registers over all the terms. Per image against planar, 2 threads, N=32, "
             "64-256 terms to 64-256 outputs, AVX-512 / AVX2 (python -m "
             "cnnkit.bench.orientation, its last table): on 48 × 48 and 56 × 56 maps planar "
             "was 1.29-2.18× / 1.00-1.46× as fast; on 28 × 28 to 42 × 42, 0.49-1.41× / "
             "0.76-1.20×, either way (before the per-image tasks fetched the next image of an "
             "input with nothing to pad). Thinner products on 56 × 56 maps (N=16, 24-144 "
             "terms to 24-144 outputs, the passes of 24 → 144 and 32 → 96 layers, in one "
             "process against the rule before) took 0.65-1.02 of their time on AVX-512 and "
             "0.97-1.14 on AVX2, where 144 terms to 24 outputs lost most (on AVX2 that "
             "product now runs per image, a deep one)." + _NOT_TIMED,
             1, 1 << 40, integer=True),
    Constant("implicit_large_map_min_terms_per_output", 2.0, "terms per output channel",
             "A 1×1 product on a large map (implicit_planar_1x1_min_positions) with at least "
             "this many terms per output channel, on a channels-last tile at least as wide "
             "as the planar tile, over enough images for a task per image, is left to the "
             "lane rules of conv/implicit.planar_wins (channels-last unless its last vector "
             "idles lanes) instead of running planar (conv/implicit._deep_per_image). Per "
             "image against planar, 2 threads, in one process, AVX-512 / AVX2: 4 terms per "
             "output (256 → 64 channels on 32 56×56 maps) 0.70 / 0.64 of planar's time; 2 "
             "(the input gradient of 128 → 256 on 8 80×80 maps) 0.77 / 0.90; 1, left planar: "
             "128 → 128 on 16 56×56 maps 0.81-0.99 / 1.06-1.08, 64 → 64 on 16 64×64 maps "
             "0.92-0.94 / 1.15-1.21, on 16 56×56 maps 1.07-1.12 on AVX-512. Compared by "
             "python -m cnnkit.bench.orientation (its last table)." + _NOT_TIMED,
             0.0, 1e6),
    Constant("implicit_weight_1x1_min_channels", 1, "input channels",
             "A 1×1, stride-1 layer's weight gradient runs on the implicit GEMM from this many "
             "input channels on, and below on shift (one matrix product per image, reading dy "
             "as it is). Shift won below 96 channels while the implicit GEMM laid all of dy "
             "out channels-last in a pass of its own; now that its tasks lay out their own "
             "positions, the implicit GEMM wins from 3 channels up, so the rule is off (1). "
             "With the bias gradient, as a layer with a bias asks for it (2 threads, implicit "
             "against shift, AVX-512 / AVX2): C=24 → 144 on 16 56×56 maps 3.59 against 5.53 "
             "ms / 5.72 against 6.36; C=3 → 64, same maps, 0.88 against 1.48 / 1.04 against "
             "2.04; C=32 → 256 on 8 28×28 maps 1.29 against 1.70 / 1.44 against 1.69; C=64 → "
             "256 on 16 14×14 maps 1.30 against 1.45 / 1.44 against 1.50 (1.23 against 1.12 "
             "in an earlier AVX2 run). Only a tiny layer went to shift: C=8 → 32 on 64 7×7 "
             "maps, 0.14 against 0.10 / 0.12 against 0.11. Compared by python -m "
             "cnnkit.bench.orientation." + _NOT_TIMED,
             1, 1 << 16, integer=True),
    Constant("implicit_pointwise_min_images", 8, "images",
             "A 1×1, stride-1 layer's forward pass and input gradient run on the implicit "
             "GEMM from this many images on; on fewer, as shift's one BLAS product "
             "per image, which reads the weights as they are (the implicit GEMM first lays "
             "them out in panels, a pass over all of them that a few images' products do not "
             "repay, and splits each image's product over the threads). Shift's time over the "
             "implicit GEMM's, 2 threads, wall time, on five layers from 64 → 256 channels on "
             "56×56 maps to 320 → 1280 on 7×7, AVX-512 / AVX2: one image, forward 0.52-0.85 "
             "/ 0.49-0.91, input 0.39-0.71 / 0.36-0.64; four images 0.80-1.11 (9 of 10 passes "
             "faster) / 0.70-1.00; eight images, where the two trade places, forward 0.86-1.15 "
             "/ 0.88-1.10. Compared by python -m cnnkit.bench.orientation." + _NOT_TIMED,
             1, 1 << 20, integer=True),
    Constant("implicit_planar_pack_min_row_tiles", 32, "row tiles",
             "A 1×1 product on the planar kernel copies each task's strips into a buffer of "
             "its own first (implicit._packs_planar) when its input is off vector boundaries "
             "(on AVX-512, whose strips span 4 cache lines, also on them), "
             "its planes lie a multiple of 1 KB apart and it has at least this many row tiles "
             "(output channels / the planar tile's rows) to reuse each copy. Packed over "
             "plain, 2 threads, 64 terms, input 16 bytes past a line, AVX-512 / AVX2, three "
             "runs: thirty-two 16×16 maps, 128 outputs (32 row tiles on AVX-512, 22 on AVX2) "
             "0.72-0.74 / 1.02-1.11, 256 outputs 0.67 / 0.87-0.97, 64 outputs 0.81-0.85 / "
             "1.03-1.18; eight 32×32 maps, 256 outputs 0.62-0.67 / 0.84-0.85; maps whose "
             "planes are not 1 KB apart (14×14, 24×24, 28×28 and 56×56; 32-128 terms, 256 "
             "outputs) 0.89-0.99 / 0.97-1.17. Compared by python -m "
             "cnnkit.bench.orientation." + _NOT_TIMED,
             1, 1 << 20, integer=True),
    Constant("implicit_weight_shares", 8, "parallel tasks",
             "The implicit GEMM's weight gradient runs this many parallel tasks: shares of the "
             "output positions, each summed into its own taps × output-channels block and the "
             "blocks added afterwards, times groups of the taps. A number fixed here, not the "
             "thread count, so the result is the same bit for bit on any number of threads "
             "(more tasks than threads balance the load)." + _NOT_TIMED, 1, 1024, integer=True),
    Constant("implicit_weight_share_positions", 2048, "output positions",
             "The implicit GEMM's weight gradient gives each share of the output positions "
             "(N·prod(out)) at least this many and splits the taps among its tasks instead: "
             "each share's partial sums (taps × output channels) are written, then added. Deep "
             "layers with small maps have few positions for their taps (256 → 256 channels at "
             "8×8, N=64: 21.7 ms with shares of 128 positions, 18.2 at 2048, 17.6 with one "
             "share; 512 → 512 at 7×7, N=16: 45.0 against 30.0 ms), while res3x3's took 9.2 ms "
             "at 1024–4096 against 11.0 with one share, its dy re-read by every group of taps "
             "(2 threads, AVX-512). Printed for a few sizes by " + BLOCKS + ".",
             1, 1 << 30, integer=True, measured_by=BLOCKS),
    Constant("implicit_weight_partials_per_dy", 0.75, "partial sums per value of dy",
             "Where implicit_weight_share_positions leaves the weight gradient fewer position "
             "shares than tasks (and so groups of taps, which need dy laid out channels-last "
             "in a pass of its own), every task gets a share of its own instead when all the "
             "tasks' partial sums (tasks × taps × output channels) come to at most this many "
             "times dy's values (N·P·K): few taps, as in 1×1 layers. 0: never. With the bias "
             "gradient, 2 threads, a share per task against groups of taps, AVX-512 / AVX2, "
             "by that ratio: 1×1 layers 64 → 256 channels on 16 14×14 maps (0.16) 0.52 / "
             "0.64 of the time, on 32 16×16 maps (0.06) 0.79 / 0.88, 256 → 64 on 32 16×16 "
             "maps (0.25) 0.92 / 0.98, 128 → 512 on 32 7×7 maps (0.65) 0.86 / 0.82; 3×3 "
             "layers 24 → 48 on 32 14×14 maps (0.28) 0.89 / 0.88, 32 → 32 on 8 28×28 maps "
             "(0.37) 0.92 / 0.89, 64 → 128 on 128 7×7 maps (0.73) 0.91 / 0.91; slower: 32 → "
             "32 on 16 16×16 maps (0.56) 1.01-1.07 / 1.02, 64 → 128 on 96 7×7 maps (0.98) "
             "1.10 / 1.04. Compared by python -m cnnkit.bench.orientation." + _NOT_TIMED,
             0, 1 << 20),
    Constant("implicit_weight_rows_min_weights_per_position", 32.0,
             "weights per output position",
             "A 1×1 layer at stride 1 with more output than input channels (K > C) gets its "
             "weight gradient as a product whose rows are the K output channels (dy read in "
             "place, x laid out channels-last, dw written row by row: no partial sums to add "
             "and transpose) when its K·C weights come to at least this many per output "
             "position (N·P): expansions on small maps. 0: never. With the bias gradient, 2 "
             "threads, against the shares and groups of implicit_weight_shares, AVX-512 / "
             "AVX2, by that ratio: 64 → 256 channels on 16 14×14 maps (5) 1.18 / 1.14 of the "
             "time, 96 → 576 (18) 1.14 / 1.00, 256 → 512 (42) 0.95 / 0.99, 128 → 512 on 32 "
             "7×7 maps (42) 0.93 / 0.93, 256 → 1024 on 16 14×14 maps (84) 0.83 / 0.83, 128 → "
             "1024 on 16 7×7 maps (167) 0.72 / 0.69, 256 → 512 on 8 7×7 maps (334) 0.95 / "
             "0.96, 320 → 1280 (1045) 0.79 / 0.83, 512 → 2048 (2675) 0.77 / 0.84. With K ≤ C "
             "it lays out the larger operand and was slower or even (1280 → 320 on 8 7×7 maps "
             "1.07 / 1.07; AVX-512 alone: 512 → 512 on 8 7×7 maps 0.98, 512 → 256 on 16 "
             "14×14 maps 1.17), so it is not taken there. Compared by python -m "
             "cnnkit.bench.orientation." + _NOT_TIMED,
             0, 1 << 30),
    Constant("implicit_weight_channel_rows_min_positions", 128, "output positions per image",
             "A weight gradient of at most a vector of output channels runs with them on the "
             "tile's rows and the input's channels at the kernel's columns on its lanes "
             "(implicit.weight_by_channel_rows) from this many output positions per image on: "
             "each image's product is a few calls of the tile over its positions. With the "
             "bias gradient, 2 threads, time against the channels-last tile, AVX-512 / AVX2: "
             "16 → 16 channels on 128 10×10 outputs (100 per image) 1.24 / -, 6 → 8 (5×5) on "
             "the same 0.85-0.92 / 1.42-1.55; 16 → 12 on 128 14×14 (196) 0.78-0.79 / -; 8 → 8 "
             "on 64 32×32 0.61-0.64 / 0.70-0.72; 8 → 6 on 128 28×28 0.52 / 0.56. Compared by "
             "python -m cnnkit.bench.orientation." + _NOT_TIMED,
             0, 1 << 30, integer=True),
    Constant("implicit_weight_channel_rows_max_columns", 96, "floats per kernel row",
             "The same arrangement takes at most this many of the tile's columns (the kernel's "
             "width times the input channels, kw·C), which each of its row tiles reads again "
             "from cache. Same comparison: 16 → 8 channels on 32 56×56 maps (48 columns) "
             "0.52-0.53 / 0.81-0.86; 32 → 8 on 32 28×28 (96) 0.59 / 0.95; 32 → 16 on 64 "
             "28×28 (96) 0.93-0.94; 64 → 16 on 32 28×28 (192) 0.99-1.04. Compared by python -m "
             "cnnkit.bench.orientation." + _NOT_TIMED, 1, 1 << 20, integer=True),
    Constant("implicit_tap_block", 128, "taps (terms of the product)",
             "The implicit GEMM's forward kernel passes over its tiles this many taps at a "
             "time, so that the weights' block (taps × tile width) stays in L1 while every "
             "tile reuses it. Printed for a few sizes, in GFLOP/s, by " + BLOCKS + ".",
             1, 1 << 20, integer=True, measured_by=BLOCKS),
    Constant("implicit_plane_tap_block", 32, "taps (input planes)",
             "The channels-last kernels' taps per pass for a 1×1 product whose input planes "
             "crowd the caches (conv/implicit.tap_block): each tap is then a plane of its "
             "own, one cache line of it per tile, and a block's lines must stay in L1 for "
             "the next tile, which reads the same lines. Planes a multiple of 1 KB apart "
             "fall on a few of L1's sets, and a block over more pages than the TLB maps "
             "misses it on every tap. Forward passes, 2 threads, this block against "
             "implicit_tap_block's 128, AVX2 / AVX-512: 256 → 64 channels on 32 16×16 maps "
             "1.88 against 2.12 ms / 1.06 against 1.16; 128 → 64 on 16 32×32 maps 2.60 "
             "against 2.90 / 1.55 against 1.76; 256 → 128 on 16 24×24 maps 4.47 against "
             "4.73 / 2.41 against 2.78. Printed for a few sizes by " + BLOCKS + ".",
             1, 1 << 20, integer=True, measured_by=BLOCKS),
    Constant("implicit_position_block", 128, "output positions",
             "The implicit GEMM's weight kernel takes dy this many output positions at a time "
             "(a task that lays dy out itself does so this many positions at a time, into a "
             "buffer of its own), for the same reason. Printed for a few sizes by " + BLOCKS +
             ".",
             1, 1 << 20, integer=True, measured_by=BLOCKS),
    Constant("implicit_image_chunk", 1 << 17, "floats of output rows",
             "A per-image forward product (conv/implicit.per_image_product) runs its tiles over "
             "this many floats of output rows (positions × output channels) at a time, over "
             "all the taps, and copies each chunk into y while it is in cache. 2 threads, "
             "AVX-512, 2 MB of L2 per core, ms, the whole image at once against 2^15, 2^16, "
             "2^17, 2^18 floats: ResNet's 7 × 7 stem (8 × 3 × 224² → 64, stride 2) 9.33–9.43 "
             "against 8.27, 7.18, 7.38–7.52, 7.42; 8 × 64 × 56² → 64 and 2 × 32 × 128² → 32 "
             "(3 × 3) alike at 2^16 and above (6.04–6.19 against 5.60–6.31, 2.25–2.42 against "
             "2.31–2.38), 5–10 % slower at 2^15 (the weights read again per chunk). Printed for "
             "a few sizes by " + BLOCKS + " (one core, the stem, whole image against 2^17: "
             "AVX-512 17.98 against 13.97 ms, AVX2 26.44 against 22.32). The tasks of a "
             "product over the batch (conv/implicit.task_split) keep their output rows within "
             "it too: 2 × 1 × 112² → 64 (5 × 5), 2 threads, 0.69–0.72 ms at 2^15 to 2^18 "
             "against 1.11 at 2^30 (a task per thread).",
             1 << 10, 1 << 30, integer=True, measured_by=BLOCKS),
    Constant("implicit_chunks_per_thread", 8, "parallel tasks per Numba thread",
             "The implicit GEMM's channels-last kernel runs at most this many tasks per "
             "thread: chunks of its output positions, times groups of its output channels "
             "where the weights outweigh the inputs, as few as keep each task's output rows "
             "within implicit_image_chunk floats (conv/implicit.task_split)."
             + _NOT_TIMED, 1, 1024, integer=True),
    Constant("fft_min_kernel_taps", 32, "taps (prod(kernel))",
             "A layer is considered for the FFT only from this kernel size on." + _NOT_TIMED,
             1, 1 << 20, integer=True),
    Constant("fft_max_cost_ratio", 0.5, "FFT work / direct work",
             "The FFT is chosen when its estimated work is below this fraction of the direct "
             "sum's (the estimate is rough, hence the margin)." + _NOT_TIMED, 0.01, 100.0),
    Constant("fft_transform_cost", 2.5, "direct multiply-adds per point·log2(points)",
             "Cost of one transform in the conv FFT estimate, relative to one direct "
             "multiply-add." + _NOT_TIMED, 0.01, 100.0),
    Constant("fft_product_cost", 2.0, "direct multiply-adds per complex product",
             "Cost of one complex multiply-add of spectra in the conv FFT estimate, relative to "
             "one direct multiply-add." + _NOT_TIMED, 0.01, 100.0),
    Constant("winograd_min_channels", 16, "input channels",
             "Winograd's 16 products have C as their inner dimension: too thin below this."
             + _NOT_TIMED, 1, 1 << 16, integer=True),
    Constant("winograd_max_waste", 1.15, "computed outputs / wanted outputs",
             "Winograd's 2×2 tiles compute odd maps one row and column too large (7×7 as 8×8); "
             "it is chosen only while that waste stays below this." + _NOT_TIMED, 1.0, 4.0),
    Constant("shift_min_group_channels", 8, "channels per group",
             "The shift products have C/G as their inner dimension: too thin for BLAS below "
             "this, where im2col's deeper product wins." + _NOT_TIMED, 1, 1 << 16, integer=True),
    Constant("shift_min_map", 400, "output positions",
             "On smaller maps the shift products' wasted border columns cost more than "
             "im2col's copy (autotune picked gemm for 14×14 and 7×7 layers)." + _NOT_TIMED,
             1, 1 << 30, integer=True),
    Constant("shift_fold_max_rows", 64, "rows (channels × last kernel size)",
             "Below this many rows the shift algorithm folds the last kernel dim into the "
             "channels (a partial im2col): fewer, deeper products." + _NOT_TIMED,
             1, 1 << 16, integer=True),
    Constant("winograd_stack_bytes", 12 << 20, "bytes",
             "Winograd transforms this many bytes of images at a time, to stay under glibc's "
             "32 MiB mmap limit. Not re-measured: a memory bound, not a timing.",
             1, 1 << 30, integer=True),
    # ----------------------------------------------------------- compiled vs NumPy thresholds
    Constant("compiled_min_size", 1 << 16, "array elements",
             "Below this many values NumPy's own passes beat waking Numba's thread pool "
             "(ReLU, leaky ReLU, GELU, bias, im2col copies) or cnnkit's (sigmoid's and ELU's "
             "passes a piece per thread). Measured as the crossover of the compiled ReLU "
             "against NumPy's, one pass each.", 0, 1 << 62, integer=True, measured_by=TUNE),
    Constant("pool_compiled_min_size", 0, "array elements",
             "Max pooling, average pooling's forward (1-D to 3-D) and adaptive pooling over "
             "windows of varying size, on at least this many input values, run compiled "
             "(pooling_numba, pooling_adaptive_numba). NumPy's pooling makes a pass per "
             "kernel offset, so the compiled kernel wins even on one 8 × 8 map (AVX-512: "
             "64 values 76 against 148 µs, 25 088 values 84 against 408). Measured as the "
             "crossover of the two 2-D max pooling forward passes.", 0, 1 << 62,
             integer=True, measured_by=TUNE),
    Constant("batchnorm_training_compiled_min_size", 1 << 13, "array elements",
             "Batch norm in training on at least this many input values runs compiled "
             "(batchnorm_numba), below it on NumPy's passes. (Evaluation of float32 and "
             "float64 maps runs compiled at every size: one loop on the calling thread below "
             "compiled_min_size, parallel tasks from it on.) AVX-512, one 32-channel image, "
             "forward under no_grad, NumPy against compiled: 128 values 23.4 against 25.1 "
             "µs, 2 048 values 25.0 against 25.1, 8 192 values 28.9 against 21.9, 32 768 "
             "values 56.9 against 27.0. Measured as the crossover of the two training-mode "
             "forward passes (512 to 8 192 in three runs).",
             0, 1 << 62, integer=True, measured_by=TUNE),
    Constant("depthwise_compiled_min_work", 0, "multiply-adds",
             "Depthwise passes with at least this much work run on the compiled kernels "
             "(depthwise_numba), smaller ones on NumPy's sums, a pass per kernel tap. Measured "
             "as the largest of the forward, input and weight passes' crossovers (2 images of "
             "16 channels, 3 × 3, maps of 1 × 1 to 128 × 128): the compiled kernels won all "
             "three from the smallest, 288 multiply-adds, on AVX-512 and AVX2 alike (2 × 2 "
             "maps: NumPy's 36–53 against 7–10 µs; a forward pass of 6 filters of 5 × 5 "
             "with a 2 × 2 output, 82 against 6), so by default they take every size (as "
             "cnnkit tune saves where they win from the smallest size it tries). The "
             "default was 2^18 once, which left LeNet-5's first weight gradient at batch 1 on "
             "NumPy (141 against 34 µs) (BENCHMARKS.md, \"Small depthwise passes compiled\").",
             0, 1 << 40, integer=True, measured_by=TUNE),
    Constant("depthwise_weight_band", 512, "floats per tap",
             "The compiled depthwise weight gradient (depthwise_numba) sums each tap's "
             "products into an accumulator of whole rows of its grid, about this many floats "
             "long, every band of rows into the same one: long loops, and for nine taps 18 KB, "
             "in L1. " + BLOCKS + " --threads 2, AVX-512 / AVX2, ms at 256, 512, 1024 and "
             "2048: 96 channels of 28 × 28, 5 × 5, 1.71 1.80 1.86 1.86 / 1.79 1.90 1.91 1.91; "
             "32 channels of 112 × 112, 3 × 3, 5.39 4.63 4.42 5.23 / 5.14 4.56 4.07 4.67; 32 "
             "channels of 56 × 56, 7 × 7, 2.19 2.04 2.04 2.50 / 2.13 2.00 2.05 2.44.",
             16, 1 << 20, integer=True, measured_by=BLOCKS),
    Constant("depthwise_lanes_max_width", 32, "padded input columns",
             "Depthwise forward passes and input gradients of maps up to this wide (padded) "
             "run with their channels on the vector lanes (conv/lanes.py), wider ones with a "
             "plane's columns on the lanes (the row correlation, the stride phases): long rows "
             "fill vectors without a transpose. Zen 4, 2 threads, µs, 3 × 3 input gradients, "
             "lanes against the row correlation, 8 images of 128 channels, padded widths 18, "
             "34 and 66: 183 / 271, 880 / 728, 3934 / 3573; 16 images of 64 channels: "
             "122 / 226, 546 / 516, 2277 / 2325. Measured as the crossover of the two (8 "
             "images of 64 channels: 57 on that Zen 4). A 3-D layer's volumes are judged by "
             "their rows alike (the padded volume's last dim), here and in the three limits "
             "below, all measured on 2-D maps.", 0, 1 << 20, integer=True,
             measured_by=TUNE),
    Constant("depthwise_lanes_stencil_max_width", 16, "padded input columns",
             "The same for a 3 × 3 stride-1 forward pass, whose alternative is the 3 × 3 "
             "stencil (depthwise3x3_numba), and for the input gradients the stencil takes "
             "(conv/rows.stencil_runs): Zen 4, 2 threads, ms, lanes against the stencil: "
             "960 channels of 7 × 7 0.46 against 1.11, 384 of 14 × 14 0.82 against 0.89, "
             "240 of 16 × 16 0.51 against 0.36. Input gradients on a Rocket Lake, AVX-512 / "
             "AVX2: 16 images of 384 channels of 14 × 14 0.59 against 0.72 / 0.58 against "
             "0.79, 16 of 256 of 16 × 16 0.48 against 0.36 / 0.47 against 0.35. Measured as "
             "the crossover of the two forward passes.",
             0, 1 << 20, integer=True, measured_by=TUNE),
    Constant("depthwise_lanes_wide_max_width", 0, "padded input columns",
             "The same for a stride-1 depthwise forward pass or input gradient whose kernel "
             "has more than 9 taps (5 × 5, 7 × 7), against the row correlation. 0: the CPU "
             "table's entry for this ISA family (``cpu.TILES``' lanes_wide_width: 48 on "
             "AVX-512, every width on AVX2, from one machine of each), which other CPUs of "
             "the family need not share. Measured as the crossover of the two forward passes "
             "of a 5 × 5 layer (8 images of 64 channels); where the lanes win at every width "
             "tried, the default stays (BENCHMARKS.md, \"Depthwise layers with kernels over "
             "3 × 3 on the lanes\").", 0, 1 << 20, integer=True, measured_by=TUNE),
    Constant("depthwise_lanes_strided_forward_max_width", 160, "padded input columns",
             "The same for a strided depthwise forward pass, whose alternative is the sum over "
             "the input's stride phases (conv/depthwise.py). 2 threads, ms, "
             "3 × 3 at stride 2, lanes against the phases, AVX-512 / AVX2: 16 images of 96 "
             "channels 112 × 112 4.57 against 7.92 / 4.70 against 7.64, 16 of 144 56 × 56 "
             "1.96 against 2.19 / 1.76 against 2.13, 8 of 64 224 × 224 11.35 against 10.36 / "
             "8.05 against 9.61, 4 of 32 224 × 224 2.98 against 1.94 / 2.28 against 1.98; 8 "
             "of 64 at 128, 192 and 256 wide, 2.21 against 2.50, 8.10 against 8.18, 18.93 "
             "against 16.19 / 1.57 against 2.30, 5.51 against 7.87, 15.88 against 15.84 (their "
             "input gradients keep depthwise_lanes_max_width). Measured as the crossover of "
             "the two (8 images of 64 channels).", 0, 1 << 20, integer=True, measured_by=TUNE),
    Constant("depthwise_lanes_sliding_gain", 1.2, "× (time ratio)",
             "The lane-wise kernels' broadcast tile along output rows (groups of a vector's "
             "channels: depthwise_lanes_numba._slide) runs a forward pass or input gradient "
             "while the outputs its tiles compute per output kept stay under this: its speed "
             "over the same tile pixel by pixel where it wastes nothing. Measured as that time "
             "ratio, forward passes of 16 images (8 with --fast) on maps whose rows are twice "
             "the tile's outputs, one core (BENCHMARKS.md, \"Groups that fill a vector: broadcasts\").",
             0.0, 8.0, measured_by=TUNE),
    Constant("depthwise_lanes_tap_block_bytes", 16 * 1024, "bytes",
             "The lane-wise kernels' tiles take a 3-D kernel's taps a few planes of the "
             "kernel at a time, as many as keep the cells a tile reads within this many bytes "
             "(depthwise_lanes_numba._tap_block), so that the next tile finds them in L1; a "
             "7 × 7 × 7 kernel's seven planes of rows are 44 KB with AVX-512's cells of 16 "
             "floats. " + TAP_BLOCKS + " times forward passes at 8, 16, 24 and 32 KB and "
             "all planes at once: 2 threads, 16 KB within 5 % of the fastest on every layer "
             "on AVX-512 and AVX2; all at once took 16 × 16 × 12³ (7 × 7 × 7) 2.19 against "
             "1.77 ms and 2 × 96 × 24³ 19.51 against 15.39 on AVX-512 (BENCHMARKS.md, \"3-D "
             "depthwise and grouped layers on the lanes\").",
             0, 1 << 30, integer=True, measured_by=TAP_BLOCKS),
    Constant("implicit_sliding_gain_1", 0.0, "× (time ratio)",
             "The implicit GEMM's one-vector tile along output rows "
             "(``microkernel.sliding_micro_kernel``) runs a product while the outputs its "
             "tiles compute per output kept stay under this: its speed over the plain tile's "
             "of one vector where it wastes nothing. 0: the CPU table's entry for this ISA "
             "family (``cpu.TILES``' sliding_gain, from one machine of it), which other CPUs "
             "of the family need not share. Measured as the time ratio of the forward "
             "products (``conv.implicit.per_image_product``, 16 images, 8 with --fast), "
             "plain against along rows, on maps whose rows are twice the tile's outputs, one "
             "core (BENCHMARKS.md, \"Tile gains measured by cnnkit tune\").",
             0.0, 8.0, measured_by=TUNE),
    Constant("implicit_sliding_gain_2", 0.0, "× (time ratio)",
             "The same for the two-vector tile along rows (AVX-512 only; none elsewhere, "
             "where it is not measured).", 0.0, 8.0, measured_by=TUNE),
    Constant("depthwise_runs_per_thread", 8, "parallel runs of planes per Numba thread",
             "The compiled depthwise kernels (depthwise_numba's forward pass and input "
             "gradient, depthwise3x3_numba's stencils) split their planes (volumes, for the "
             "3-D stencil) into this many runs per thread, for load balance; each run reuses "
             "its buffers."
             + _NOT_TIMED, 1, 1024, integer=True),
    Constant("fft_parallel_min_size", 1 << 20, "array elements",
             "FFT passes over at least this many values are split across threads. Not "
             "re-measured: the benchmark found the threshold under competing threads.",
             0, 1 << 62, integer=True),
    # ------------------------------------------------------------- row correlation cost model
    Constant("rows_ns_per_lane_mac_1row", 0.025, "ns per lane multiply-add, one core",
             "Row correlation with a one-row tile (every input vector reloaded per output row).",
             1e-5, 10.0, measured_by=TUNE),
    Constant("rows_ns_per_lane_mac_4rows", 0.009, "ns per lane multiply-add, one core",
             "Row correlation with a four-row tile (each input vector shared by four rows).",
             1e-5, 10.0, measured_by=TUNE),
    Constant("rows_ns_per_element_copied", 0.2, "ns per element",
             "Row correlation: copying the padded input block and the cropped output.",
             1e-5, 100.0, measured_by=TUNE),
    Constant("rows_overhead_ns", 12_000.0, "ns per call",
             "Row correlation: fixed cost of a call (tables, thread pool).", 0.0, 1e8,
             measured_by=TUNE),
    Constant("rows_forward_max_taps", 16, "kernel taps (prod(kernel))",
             "A groups-1 layer on a one-channel input stays on the row correlation's forward "
             "up to this many kernel taps whatever its filters (3×3 kernels, K = 4..64: the "
             "implicit GEMM 1.1–3.6× slower on 2 threads, AVX-512, 1.3–5.2× on AVX2)."
             + _NOT_TIMED, 0, 1 << 20, integer=True),
    Constant("rows_forward_min_terms", 400, "multiply-adds per output (K·prod(kernel))",
             "With more taps than rows_forward_max_taps, the implicit GEMM's planar tile, which "
             "shares each input vector across filters, takes a one-channel forward from this "
             "many terms per output on. 2 threads, 28 × 28 maps on 2 to 64 images: 5 × 5 and "
             "7 × 7 kernels with K = 8 ran 0.61–1.08 of the implicit GEMM's time on the row "
             "correlation (AVX2 0.74–0.96), K = 16 0.80–1.09 (AVX2 0.79–1.19), K = 32 and 64 "
             "0.94–1.58 (AVX2 0.96–1.31); 1×101 on signals, K = 8: 1.45–1.54 (AVX2 1.09–1.26)."
             + _NOT_TIMED, 1, 1 << 20, integer=True),
    Constant("depthwise_input_max_kernel", 9, "kernel length along each axis",
             "The depthwise kernels take the stride-1 input gradient of a groups-1 layer on a "
             "one-channel map (1-D, or 2-D and dilated: depthwise.claims) for kernels up to this "
             "long along every axis. 2 threads: kernels of 3 to 9 ran 0.33–0.50 of the row "
             "correlation's or the implicit GEMM's time (geometric means, AVX-512 and AVX2); "
             "on 1-D signals of 8 images, 15 taps ran even with the row correlation (0.597 "
             "against 0.591 ms), 17 and 31 taps 1.08–1.13 of its time, 101 taps 2.6 (9.81 "
             "against 3.74 ms, AVX-512)." + _NOT_TIMED, 1, 1 << 20, integer=True),
    Constant("depthwise_volume_flat_min_remainder_share", 0.2, "share of a row's columns",
             "A 3-D depthwise 3 × 3 × 3 forward pass (or input gradient) on the stencil "
             "(depthwise3x3_numba.forward_volume) runs each output plane as one flat run, "
             "2 padding cells per row computed and dropped, where its rows leave this share "
             "of their columns or more past their last whole vector of REMAINDER_LANES (8) "
             "lanes, which run one by one; else row by row. Flat against row by row, 8 images "
             "of 32 channels on 8 × c × c volumes, 2 threads, AVX-512 / AVX2: c = 4 to 7 "
             "0.42–0.53 / 0.48–0.59 of the time, 10 to 14 0.57–0.80 / 0.64–0.89, 20, 22 and 30 "
             "0.71–0.79 / 0.86–0.96; rows of whole vectors 1.21–1.32 / 1.12–1.73 (BENCHMARKS.md, "
             "\"3-D depthwise 3 × 3 × 3 layers on a stencil\").", 0.0, 1.0,
             measured_by=VOLUME_STENCIL),
    Constant("depthwise_volume_weight_max_multiplier", 6, "output channels per input channel",
             "A 3-D layer of one input channel per group with a 3 × 3 × 3 kernel and at most "
             "this many outputs per input channel has its weight gradient on the stencil "
             "(rows.takes_volume_weight: 27 sums over each output plane, x read once per "
             "output channel), else on the implicit GEMM, which shares x among a group's "
             "outputs. Stencil against the implicit GEMM (python -m cnnkit.bench."
             "volume_stencil --weight: 1, 4 and 16 input channels on 16³ volumes), time ratio, "
             "2 threads, AVX-512 / AVX2: outputs per channel 1 and 2 0.13–0.42 / 0.16–0.57, 4 "
             "and 6 0.36–0.75 / 0.50–0.91; 8 0.66–1.09 / 1.10–1.27, 12 0.77–0.94 / 1.05–1.24, 16 "
             "1.14–1.52 / 1.53–1.98, 32 1.94–2.09 / 1.91–2.32 (BENCHMARKS.md, \"3-D depthwise "
             "3 × 3 × 3 layers on a stencil\").", 1, 1 << 20, integer=True,
             measured_by=VOLUME_STENCIL + " --weight"),
    Constant("depthwise_weight_max_filters", 8, "output channels",
             "A 2-D groups-1 layer on a one-channel input with at most this many filters and "
             "at most depthwise_weight_max_terms terms has its weight gradient on the depthwise "
             "kernels (a pass per tap), not the implicit GEMM, whose tile it leaves mostly "
             "idle. 2 threads, AVX-512, 3 × 3 and 5 × 5 kernels within both bounds, 2 to 128 "
             "images of 28² to 512²: 0.24–0.74 of the implicit GEMM's time (AVX2, 28² and 56²: "
             "0.28–0.65; one image: 0.77–1.41); K = 16, 3 × 3: 1.13–1.35 (one 56² batch 0.81)."
             + _NOT_TIMED, 0, 1 << 20, integer=True),
    Constant("depthwise_weight_max_terms", 160, "multiply-adds per output (K·prod(kernel))",
             "See depthwise_weight_max_filters: K = 8 with a 5 × 5 kernel (200 terms) ran "
             "0.85–1.15 of the implicit GEMM's time, K = 4 with 7 × 7 (196) 0.61–0.82."
             + _NOT_TIMED, 0, 1 << 20, integer=True),
    Constant("rows_chunks_per_thread", 4, "work chunks per Numba thread",
             "The row correlation splits columns until it has this many tasks per thread."
             + _NOT_TIMED, 1, 1024, integer=True),
    # ------------------------------------------------------- signal direct-vs-FFT cost model
    Constant("npconvolve_ns_per_mac_float", 0.1, "ns per multiply-add, one core",
             "np.convolve on real floats (1-D direct signals).", 1e-5, 100.0, measured_by=TUNE),
    Constant("npconvolve_ns_per_mac_other", 0.4, "ns per multiply-add, one core",
             "np.convolve on complex, integer and bool inputs (timed on complex ones).", 1e-5,
             100.0, measured_by=TUNE),
    Constant("npconvolve_overhead_ns", 2_000.0, "ns per call", "np.convolve's fixed cost.",
             0.0, 1e8, measured_by=TUNE),
    Constant("loop_ns_per_mac", 0.6, "ns per multiply-add, one core",
             "The kernel-offset loop of direct N-D signals (non-float32 dtypes).", 1e-5, 100.0,
             measured_by=TUNE),
    Constant("loop_overhead_ns_per_offset", 3_000.0, "ns per kernel offset",
             "The kernel-offset loop's cost per offset.", 0.0, 1e8, measured_by=TUNE),
    Constant("window_ns_per_mac", 1.2, "ns per multiply-add, one core",
             "The sliding-window einsum of direct N-D signals.", 1e-5, 100.0, measured_by=TUNE),
    Constant("window_ns_per_output", 0.0, "ns per output value",
             "The sliding-window einsum's cost per output value, beside its cost per "
             "multiply-add: small kernels pay it (a 2 × 2 kernel's window ran at half the rate "
             "per multiply-add of a 9 × 9 one). 0 by default, the model the other defaults "
             "were set in.", 0.0, 1e4, measured_by=TUNE),
    Constant("window_overhead_ns", 20_000.0, "ns per call",
             "The sliding-window einsum's fixed cost.", 0.0, 1e8, measured_by=TUNE),
    Constant("fft_ns_per_nlogn_1d", 2.0, "ns per point·log2(points)",
             "A 1-D FFT convolution (two transforms, one inverse and the product).", 1e-4, 100.0,
             measured_by=TUNE),
    Constant("fft_ns_per_nlogn_nd", 0.6, "ns per point·log2(points)",
             "An N-D FFT convolution (two transforms, one inverse and the product).", 1e-4, 100.0,
             measured_by=TUNE),
    Constant("fft_ns_per_nlogn_overlap_add", 0.45, "ns per point·log2(block)",
             "Overlap-add's many short transforms in one call (long 1-D signals).", 1e-4, 100.0,
             measured_by=TUNE),
    Constant("fft_overhead_ns", 40_000.0, "ns per call", "An FFT convolution's fixed cost.",
             0.0, 1e8, measured_by=TUNE),
    Constant("overlap_add_min_block", 4096, "samples",
             "Shortest overlap-add block." + _NOT_TIMED, 16, 1 << 24, integer=True),
    Constant("overlap_add_block_per_kernel", 8, "block samples per kernel sample",
             "An overlap-add block is at least this many kernel lengths, so the K - 1 overlap "
             "is a small part of it." + _NOT_TIMED, 2, 1024, integer=True),
    Constant("overlap_add_min_blocks", 4, "blocks",
             "Overlap-add is used only for signals of at least this many blocks; shorter ones "
             "take one FFT of the whole signal." + _NOT_TIMED, 1, 1 << 20, integer=True),
]

CONSTANTS = {c.name: c for c in _TABLE}
