"""Which ONNX operators the TensorRT ONNX parser (onnx-tensorrt) accepts, per TensorRT generation.

Kept as plain data (frozensets and dicts; no torch, no onnx) so the linter and the CLI import it for free.
Every entry was read from a source below; nothing is guessed from parser behaviour.

Sources: github.com/onnx/onnx-tensorrt, docs/operators.md, at the commit that github.com/NVIDIA/TensorRT pins
as its parsers/onnx submodule on the release branch named:

- "8.5": fd119fec8565264add819f8edc801066116a32dd (NVIDIA/TensorRT release/8.5, i.e. 8.5.3; onnx-tensorrt
  branch 8.5-GA). The list published on 8.5 GA day (release/8.5-GA, 3b008c46) marked HardSwish, Mod and
  OneHot "N"; commits 47de8a1 and 7029da0 ("Mark ... as supported") corrected the document, not the parser.
- "8.6": 6ba67d3428e05f690145373ca87fb8d32f98df45 (NVIDIA/TensorRT release/8.6; release/8.6-GA,
  "TensorRT 8.6.1 Parser Update").
- "10": 6bde6596eca84abf9afe9b4d21c18c32800fd3ad (NVIDIA/TensorRT release/10.16, the newest 10.x). Its rows
  are the 10.1 rows (96e781103cfc4adf4a6bb557e94bac8e693f6f4c) plus what docs/Changelog.md at that commit
  says each release added; `since` below records those releases.
- "11": 7c51a63a719180eb5160c874c111746f3fb46a6b (NVIDIA/TensorRT release/11.1 and main): the 10.16 rows
  plus Swish (CHANGELOG.md 11.0 GA: "Added support for Swish operator"). Neither the 11.0 pin (5ab48c5c)
  nor any later 11.x operators.md was readable; the GitHub release notes add DFT (v11.2: "Added support for
  the DFT operator") and opset 25 (v11.5: "Added support for ONNX opset 25"). The 11.0.0 release notes and
  the 10.x-to-11.x migration guide (docs.nvidia.com/deeplearning/tensorrt/11.0.0/...) remove weak typing,
  INT8 calibration and some plugins, but no ONNX operator, so nothing is subtracted.

Other facts used by the linter, from the same commits unless noted:
- Opset range: the first line of each operators.md ("up to Opset 17"; "in the inclusive range of opset 9 to
  opset 24"). 8.x names no minimum; ModelImporter.cpp warns it "supports ONNX graphs generated with at least
  opset 7", taken as the minimum.
- INT64: 8.5/8.6 operators.md: "TensorRT will attempt to cast down INT64 to INT32 ... clamping values to
  +-INT_MAX"; docs/Changelog.md, 9.0 EA: "The ONNX parser no longer automatically casts INT64 to INT32".
- DOUBLE: every list: "TensorRT will attempt to cast DOUBLE down to FLOAT, clamping values to +-FLT_MAX".
- Q/DQ: operators.md ("`x_zero_point` must be zero", supported types); include/NvInfer.h, IQuantizeLayer, in
  NVIDIA/TensorRT release/8.5 and 8.6 ("The subgraph which terminates with the scale tensor must be a
  build-time constant. The same restrictions apply to the zeroPt") against release/10.16 and 11.1 (only the
  zeroPt must be a build-time constant); QuantDequantLinearHelper in builtin_op_importers.cpp (8.x: rejects
  UINT8, "requires 3 inputs") and onnxOpImporters.cpp at 96e78110 (10.x: UINT8 zero point -> INT8, warning).
  DequantizeLinear inputs: the "Supported Types" column (INT8; 10.16: INT8, FP8, FP4, INT4); an INT32 bias
  fails with "only activation types allowed as input" (github.com/onnx/onnx-tensorrt/issues/850).
- Local functions: docs/Changelog.md, 9.0 EA: "Added support for ONNX local functions".
- TensorRT 11: "Strongly typed networks are now the default ... Weak typing is no longer supported"
  (11.0.0 release notes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


def _ops(names: str) -> frozenset[str]:
    return frozenset(names.split())


@dataclass(frozen=True)
class ParserSupport:
    """What one TensorRT generation's ONNX parser accepts, as its documents state it."""

    generation: str
    source: str
    opset_min: int
    opset_max: int
    supported: frozenset[str]
    unsupported: frozenset[str]  # rows marked "N": listed and refused
    notes: Mapping[str, str]  # per-operator restrictions that decide whether a build succeeds
    since: Mapping[str, str]  # operators added by a later release of the generation -> that release
    opset_notes: tuple[tuple[int, str], ...]  # (opset above which, what the earlier releases documented)
    dequantize_types: tuple[str, ...]  # DequantizeLinear "Supported Types" (UINT8 is handled on its own)
    int64_cast_to_int32: bool
    qdq_scale_must_be_constant: bool
    qdq_requires_zero_point: bool
    qdq_rejects_uint8: bool
    local_functions: bool
    strongly_typed_only: bool


# Rows of each operators.md, "Supported" column; names exactly as the documents spell them.
_SUPPORTED_85 = _ops(
    """
    Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil Celu
    Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear Div
    Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gemm
    GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GRU HardSigmoid HardSwish
    Identity If ImageScaler InstanceNormalization IsNaN LeakyRelu Less LessOrEqual Log LogSoftmax Loop
    LpNormalization LpPool LRN LSTM MatMul Max MaxPool Mean MeanVarianceNormalization Min Mod Mul Neg
    NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal
    RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum
    ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize
    ReverseSequence RNN RoiAlign Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink
    Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh
    ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
    """
)  # 142


_UNSUPPORTED_85 = _ops(
    """
    Bernoulli BitShift BlackmanWindow Compress ConcatFromSequence ConvInteger Det DFT DynamicQuantizeLinear
    HammingWindow HannWindow Hardmax IsInf LayerNormalization MatMulInteger MaxRoiPool MaxUnpool MelWeightMatrix
    Multinomial NegativeLogLikelihoodLoss Optional OptionalGetElement OptionalHasElement QLinearConv
    QLinearMatMul SequenceAt SequenceConstruct SequenceEmpty SequenceErase SequenceInsert SequenceLength
    SequenceMap SoftmaxCrossEntropyLoss SplitToSequence STFT StringNormalizer TfIdfVectorizer Unique
    """
)  # 38


_SUPPORTED_86 = _ops(
    """
    Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil Celu
    Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear Div
    Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gemm
    GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization GRU
    HardSigmoid HardSwish Identity If ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu
    Less LessOrEqual Log LogSoftmax Loop LpNormalization LpPool LRN LSTM MatMul Max MaxPool Mean
    MeanVarianceNormalization Min Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow
    PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1
    ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare
    Relu Reshape Resize ReverseSequence RNN RoiAlign Round ScaledTanh Scan Scatter ScatterElements ScatterND
    Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze
    Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
    """
)  # 145


_UNSUPPORTED_86 = _ops(
    """
    Bernoulli BitShift BlackmanWindow Compress ConcatFromSequence ConvInteger Det DFT DynamicQuantizeLinear
    HammingWindow HannWindow Hardmax MatMulInteger MaxRoiPool MaxUnpool MelWeightMatrix Multinomial
    NegativeLogLikelihoodLoss Optional OptionalGetElement OptionalHasElement QLinearConv QLinearMatMul
    SequenceAt SequenceConstruct SequenceEmpty SequenceErase SequenceInsert SequenceLength SequenceMap
    SoftmaxCrossEntropyLoss SplitToSequence STFT StringNormalizer TfIdfVectorizer Unique
    """
)  # 36


_SUPPORTED_10 = _ops(
    """
    Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool BatchNormalization
    BlackmanWindow Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh
    CumSum DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten
    Floor Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater
    GreaterOrEqual GridSample GroupNormalization GRU HammingWindow HannWindow Hardmax HardSigmoid HardSwish
    Identity If ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log
    LogSoftmax Loop LpNormalization LpPool LRN LSTM MatMul Max MaxPool Mean MeanVarianceNormalization Min Mish
    Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu QuantizeLinear
    RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2
    ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu
    Reshape Resize ReverseSequence RMSNormalization RNN RoiAlign RotaryEmbedding Round ScaledTanh Scan Scatter
    ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign
    SpaceToDepth Split Sqrt Squeeze STFT Sub Sum Tan Tanh TensorScatter ThresholdedRelu Tile TopK Transpose
    Trilu Unsqueeze Upsample Where Xor
    """
)  # 158


_UNSUPPORTED_10 = _ops(
    """
    AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor CenterCropPad Col2Im Compress
    ConcatFromSequence ConvInteger Det DFT DynamicQuantizeLinear ImageDecoder MatMulInteger MaxRoiPool MaxUnpool
    MelWeightMatrix Multinomial NegativeLogLikelihoodLoss Optional OptionalGetElement OptionalHasElement
    QLinearConv QLinearMatMul RegexFullMatch SequenceAt SequenceConstruct SequenceEmpty SequenceErase
    SequenceInsert SequenceLength SequenceMap SoftmaxCrossEntropyLoss SplitToSequence StringConcat
    StringNormalizer StringSplit TfIdfVectorizer Unique
    """
)  # 42


# 11.1 rows = 10.16 rows + Swish; DFT from the v11.2 release notes.
_SUPPORTED_11 = _SUPPORTED_10 | {"Swish", "DFT"}


_UNSUPPORTED_11 = _UNSUPPORTED_10 - {"DFT"}


# "Restrictions" column, shortened, for operators an image classifier or its quantised form may contain.
_NOTES_8 = {
    "AveragePool": "2D or 3D pooling only",
    "MaxPool": "2D or 3D pooling only; the `Indices` output is unsupported",
    "CumSum": "`axis` must be an initializer",
    "Einsum": "ellipsis, diagonal operations and broadcasting between inputs are unsupported",
    "Slice": "`axes` must be an initializer",
    "Squeeze": "`axes` must be an initializer",
    "Unsqueeze": "`axes` must be a constant tensor",
    "Resize": "modes nearest/linear; coordinate modes half_pixel, pytorch_half_pixel, tf_half_pixel_for_nn, "
    "asymmetric, align_corners",
    "QuantizeLinear": "input FP32/FP16; `y_zero_point` must be 0",
    "DequantizeLinear": "input INT8 only; `x_zero_point` must be zero",
}


_NOTES_85 = {
    **_NOTES_8,
    "InstanceNormalization": "`scale` and `B` must be initializers; input rank 3 to 5",
    "TopK": "`K` input must be an initializer",
    "ReverseSequence": "dynamic input shapes are unsupported",
}


_NOTES_10 = {
    "AveragePool": "2D or 3D pooling only; `dilations` must be empty or all ones",
    "MaxPool": "2D or 3D pooling only; `Indices` output unsupported; `dilations` must be empty or all ones",
    "CumSum": "`axis` must be a build-time constant",
    "Dropout": "`is_training` must be an initializer and evaluate to False",
    "LayerNormalization": "only the first output `Y` is supported",
    "Squeeze": "`axes` must be resolvable to a constant",
    "Unsqueeze": "`axes` must be resolvable to a constant",
    "TopK": "`sorted` must be 1; `K` must be less than 3840",
    "Resize": "modes nearest/linear; aspect ratio policy `stretch` only; antialiasing unsupported",
    "QuantizeLinear": "input FP32/FP16/BF16; `y_zero_point` must be 0",
    "DequantizeLinear": "input INT8/FP8/FP4/INT4; `x_zero_point` must be zero",
}


# Release that added an operator within its generation (docs/Changelog.md at 6bde6596; 10.1: DeformConv is in
# the 10.1 list but not the 10.0 one; 11.2: DFT from the release notes).
_SINCE_10 = {
    "DeformConv": "10.1",
    **dict.fromkeys(("BlackmanWindow", "HammingWindow", "HannWindow"), "10.4"),
    "STFT": "10.5",
    "Attention": "10.14",
    **dict.fromkeys(("RotaryEmbedding", "RMSNormalization", "TensorScatter"), "10.15"),
}


_ONNX_TRT = "onnx/onnx-tensorrt docs/operators.md @ "


def _support(
    generation: str,
    source: str,
    opsets: tuple[int, int],
    ops: tuple[frozenset[str], frozenset[str]],
    notes: dict[str, str],
    since: dict[str, str] | None = None,
    opset_notes: tuple[tuple[int, str], ...] = (),
) -> ParserSupport:
    """Fill the flags that follow from the generation: 9.0 brought native INT64, local functions, dynamic scales."""
    modern = generation in ("10", "11")
    return ParserSupport(
        generation=generation,
        source=source,
        opset_min=opsets[0],
        opset_max=opsets[1],
        supported=ops[0],
        unsupported=ops[1],
        notes=MappingProxyType(notes),
        since=MappingProxyType(since or {}),
        opset_notes=opset_notes,
        dequantize_types=("INT8", "FP8", "FP4", "INT4") if modern else ("INT8",),
        int64_cast_to_int32=not modern,
        qdq_scale_must_be_constant=not modern,
        qdq_requires_zero_point=not modern,
        qdq_rejects_uint8=not modern,
        local_functions=modern,
        strongly_typed_only=generation == "11",
    )


SUPPORT: Mapping[str, ParserSupport] = MappingProxyType(
    {
        "8.5": _support(
            "8.5", _ONNX_TRT + "fd119fec (TensorRT 8.5.3)", (7, 17), (_SUPPORTED_85, _UNSUPPORTED_85), notes=_NOTES_85
        ),
        "8.6": _support(
            "8.6", _ONNX_TRT + "6ba67d34 (TensorRT 8.6.1)", (7, 17), (_SUPPORTED_86, _UNSUPPORTED_86), notes=_NOTES_8
        ),
        "10": _support(
            "10",
            _ONNX_TRT + "6bde6596 (TensorRT 10.16)",
            (9, 24),
            (_SUPPORTED_10, _UNSUPPORTED_10),
            notes=_NOTES_10,
            since=_SINCE_10,
            opset_notes=((20, "the TensorRT 10.0 and 10.1 lists stop at opset 20; 10.16 reaches 24"),),
        ),
        "11": _support(
            "11",
            _ONNX_TRT + "7c51a63a (TensorRT 11.1) + 11.2/11.5 release notes",
            (9, 25),
            (_SUPPORTED_11, _UNSUPPORTED_11),
            notes=_NOTES_10,
            since={"DFT": "11.2"},
            opset_notes=((24, "the TensorRT 11.1 list stops at opset 24; opset 25 arrived in 11.5"),),
        ),
    }
)


# Advice appended to "unsupported operator" blockers: what to change so the parser accepts the model.
_QDQ_HINT = (
    "TensorRT takes quantised models only as QuantizeLinear/DequantizeLinear pairs (onnx-tensorrt docs/faq.md); "
    "re-quantise in Q/DQ format, e.g. onnxruntime quantize_static(..., quant_format=QuantFormat.QDQ)"
)


_INTEGER_QUANT_OPS = ("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear")


HINTS: Mapping[str, str] = MappingProxyType(
    {
        "LayerNormalization": "export with --opset 13, which decomposes LayerNorm into primitive ops, "
        "or target TensorRT >= 8.6",
        "Gelu": "export with an opset below 20, where GELU is decomposed into Erf, Mul and Add",
        **dict.fromkeys(_INTEGER_QUANT_OPS, _QDQ_HINT),
    }
)
