"""Which layers' Grad-CAM maps answer the drawn region: a rule read from the graph, without a forward pass.

Why: Grad-CAM weighs channel k of layer A by α_k = Σ_ij ∂S/∂A_k(i, j). With the adapter's score
S = (1/N) Σ_p m(p) y_c(p) (m the drawn region), α_k = (1/N) Σ_p m(p) g_k(p), where
g_k(p) = Σ_ij ∂y_c(p)/∂A_k(i, j) says how much output pixel p moves when all of channel k moves.
When every layer between A and the class logits is *position-uniform* — affine and alike at every
position (convolutions of any kernel size without an activation, batch normalisation, average
pooling, resizing, Add / Concatenate, dropout) or max pooling (each output's gradient picks one
input with weight 1) — g_k(p) is the same at every interior position p, so α is one vector
times the region's size whatever is drawn: the map ignores the drawing (zero padding at the border
aside). Spatial mixing alone does not change that: on the shipped network `final_conv` is followed
by a 1×1 classifier and a bilinear upsampling and its Grad-CAM is measured region-blind. A
position-dependent non-linearity (a ReLU or any other activation, separate or fused into a
convolution; a product of two maps; a normalisation by a position's own statistics) makes g_k(p)
differ from position to position, and the drawn region then changes the map.

Rule: a layer *answers the region* when at least one path from its output to the class logits
passes through a layer that is not position-uniform (`is_position_uniform`; layers of unknown kind
count as non-linear). The default layer (`graph.default_layer`) is the deepest explainable layer
that answers the region. Assumed: each non-linearity is active at some positions and not at all
(a ReLU whose input is never negative behaves linearly and is not detected).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import keras

# Class names of layers (and of `keras.ops` operations in a functional graph) that are position-uniform.
POSITION_UNIFORM = frozenset({
    # affine maps, the same at every position (an `activation` other than linear makes them non-linear)
    "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "Dense", "EinsumDense",
    "BatchNormalization", "Rescaling", "Normalization", "Activation",
    # pooling and resampling: each output's gradient over the input positions sums to the same value
    "AveragePooling2D", "MaxPooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
    "UpSampling2D", "Resizing", "_SizeFreeUpSampling",
    # moving, merging and regularising without changing values position by position
    "ZeroPadding2D", "Cropping2D", "Reshape", "Permute", "Flatten", "Identity", "InputLayer",
    "Add", "Subtract", "Average", "Concatenate",
    "Dropout", "SpatialDropout2D", "GaussianDropout", "GaussianNoise", "AlphaDropout", "ActivityRegularization",
    # keras.ops calls recorded as operations of a functional graph
    "Transpose", "Squeeze", "ExpandDims", "Cast", "Slice", "GetItem", "Pad", "Mean", "Sum", "Negative",
    "BroadcastTo", "Tile", "ZerosLike",
})
_LINEAR_ACTIVATIONS = ("linear", "")


def is_position_uniform(op) -> bool:
    """Whether `op` (a Keras layer or operation) leaves Grad-CAM's summed gradients alike at every position.

    True for the classes in `POSITION_UNIFORM` whose `activation`, if any, is linear; False otherwise
    (activations, Multiply, LayerNormalization, attention, unknown layers).
    """
    if type(op).__name__ not in POSITION_UNIFORM:
        return False
    activation = getattr(op, "activation", None)
    name = getattr(activation, "__name__", "") if activation is not None else ""
    return name in _LINEAR_ACTIVATIONS


def _tensors(args, kwargs) -> list:
    return [t for t in keras.tree.flatten((args, kwargs)) if isinstance(t, keras.KerasTensor)]


def answering_tensors(roots: Iterable[tuple[object, bool]], producers: Mapping[int, tuple]) -> set[int]:
    """Ids of the tensors with a non-uniform layer between them and the logits.

    `roots` are (tensor, already non-linear) pairs where the walk starts (the logits, or the inputs of
    a fused classifier whose squash was removed); `producers` maps a tensor's id to (op, args, kwargs).
    """
    answering: set[int] = set()
    seen: set[tuple[int, bool]] = set()
    stack = list(roots)
    while stack:
        tensor, nonlinear = stack.pop()
        if (id(tensor), nonlinear) in seen:
            continue
        seen.add((id(tensor), nonlinear))
        if nonlinear:
            answering.add(id(tensor))
        producer = producers.get(id(tensor))
        if producer is None:
            continue
        op, args, kwargs = producer
        after = nonlinear or not is_position_uniform(op)
        stack.extend((t, after) for t in _tensors(args, kwargs))
    return answering
