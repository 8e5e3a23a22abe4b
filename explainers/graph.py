"""Graph surgery: turn any accepted Keras model into one flat functional graph whose tensors can be tapped.

Why: attribution methods need the activations of an inner layer and the per-pixel pre-activation
scores from the same forward pass. Keras 3 makes that awkward for Sequential models, for layers
inside a nested sub-model (a `keras.applications` backbone used as one layer) and for heads with a
fused softmax. So every model is rebuilt once, by re-applying its (shared, unmodified) layers to a
fresh `keras.Input`, recursing into nested models; every layer output becomes a tensor we can ask
for. The user's model object is never changed: a fused head is replaced in our copy by a linear
clone whose weights are copied from the original.

Which layers a CAM can explain: every layer whose output is a spatial feature map (batch, h, w,
channels), whatever the layer does (convolution, activation, normalisation, Add / Concatenate,
pooling, resizing, per-pixel Dense), at any depth of nested models; and transformer token maps
(batch, tokens, channels) whose tokens form the model's h×w patch grid, read through a reshape to
(batch, h, w, channels) (as pytorch-grad-cam's `reshape_transform` is used for ViT / SegFormer).
Left out: layers that only preprocess the image (nothing learned before them, e.g. `Rescaling`) and
the probabilities after the logits (the CAMs differentiate the logits, so nothing flows back there).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import keras
import tensorflow as tf

from explainers import region_rule
from explainers.caching import PerModel
from explainers.errors import ExplainerError

_CONV_KINDS: tuple[tuple[type, str], ...] = (
    (keras.layers.SeparableConv2D, "separable conv"),
    (keras.layers.DepthwiseConv2D, "depthwise conv"),
    (keras.layers.Conv2DTranspose, "transposed conv"),
    (keras.layers.Conv2D, "conv"),
)
# Layer families by class name, for the picker's "kind" column (first match wins).
_FAMILIES: tuple[tuple[str, str], ...] = (
    ("Normalization", "normalisation"),
    ("Pool", "pooling"),
    ("UpSampling", "resizing"),
    ("Resizing", "resizing"),
    ("Add", "merge"),
    ("Concatenate", "merge"),
    ("Multiply", "merge"),
    ("Subtract", "merge"),
    ("Average", "merge"),
    ("Maximum", "merge"),
    ("Minimum", "merge"),
    ("ReLU", "activation"),
    ("Activation", "activation"),
    ("Softmax", "activation"),
    ("Dropout", "dropout"),
)
# Going back from the classifier to the default layer, these only resample or regularise the map.
_PASS_THROUGH = ("UpSampling2D", "Resizing", "Dropout", "SpatialDropout2D", "GaussianDropout", "GaussianNoise")
_SQUASHERS = ("softmax", "sigmoid")
_MAX_STRIDE = 64  # largest patch stride tried when inferring a token grid from the input size


@dataclass(frozen=True)
class LayerInfo:
    """One explainable layer: its name (as inside its own sub-model), output shape and kind of layer.

    For a token layer `output_shape` is the (batch, h, w, channels) shape CAMs see after the reshape.
    """

    name: str
    output_shape: tuple[int | None, ...]
    kind: str


@dataclass(frozen=True)
class Stage:
    """Explainable layers sharing one output resolution, in forward order: one group of the layer picker."""

    label: str
    size: tuple[int | None, int | None]
    layers: list[LayerInfo]


@dataclass(frozen=True)
class ModelSummary:
    """What the UI and the explainers need to know about an accepted segmentation model."""

    input_size: tuple[int | None, int | None]
    num_classes: int
    output_size: tuple[int | None, int | None]
    layers: list[LayerInfo]
    head: str
    channels: int = 3


@dataclass
class FlatGraph:
    """The rebuilt graph: one input, per-pixel logits and probabilities, and every layer's output.

    `taps` holds every 4-D (spatial) and 3-D (token) layer output in forward order; `kinds` the kind
    of each; `explainable` the names CAMs may use (with why the others may not in `refused`);
    `token_grids` the (h, w, skipped leading tokens) of the token layers whose grid is known;
    `convolutions` the names of the 2-D convolution layers; `answers_region` the explainable layers whose
    Grad-CAM the drawn region changes (`region_rule`); `default` the default layer.
    """

    input: object
    logits: object
    probabilities: object
    head: str
    taps: dict[str, object] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    explainable: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    token_grids: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    convolutions: list[str] = field(default_factory=list)
    default: str | None = None
    names: set[str] = field(default_factory=set)
    answers_region: set[str] = field(default_factory=set)


_FLAT_CACHE = PerModel()


def _foreign(model):
    """The engine of a non-Keras model (`explainers.from_torch`); the public functions here hand it the call."""
    return getattr(model, "segexplain_engine", None)
_USER_GRIDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _conv_kind(layer) -> str | None:
    for cls, kind in _CONV_KINDS:
        if isinstance(layer, cls):
            return kind
    return None


def _kind(layer) -> str:
    conv = _conv_kind(layer)
    if conv is not None:
        return conv
    name = type(layer).__name__
    for part, family in _FAMILIES:
        if part in name:
            return f"{family} ({name})"
    return name


def _activation_name(layer) -> str:
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    fn = getattr(layer, "activation", None)
    return getattr(fn, "__name__", "") if fn is not None else ""


def _is_graph_model(obj) -> bool:
    """True for models whose graph we can walk (functional or Sequential), False for subclassed ones."""
    return isinstance(obj, keras.Sequential) or (
        isinstance(obj, keras.Model) and hasattr(obj, "_nodes_by_depth") and hasattr(obj, "_run_through_graph")
    )


class _SizeFreeUpSampling(keras.layers.Layer):
    """Stand-in (in our copy only) for a non-nearest `UpSampling2D` on a map of unknown size.

    Keras' own layer fails when traced with unknown height and width (it tests the new size as a
    Python bool); resizing to `tf.shape(x) × factor` here computes the same thing (`tf.image.resize`).
    """

    def __init__(self, original: keras.layers.UpSampling2D) -> None:
        super().__init__(name=f"{original.name}_size_free")
        self.factors = tuple(int(v) for v in original.size)
        self.method = original.interpolation
        self.channels_first = original.data_format == "channels_first"

    def call(self, x):
        if self.channels_first:
            x = tf.transpose(x, [0, 2, 3, 1])
        size = tf.shape(x)[1:3] * tf.constant(self.factors, tf.int32)
        x = tf.cast(tf.image.resize(x, size, method=self.method), x.dtype)
        return tf.transpose(x, [0, 3, 1, 2]) if self.channels_first else x

    def compute_output_shape(self, shape):
        axes = (2, 3) if self.channels_first else (1, 2)
        out = list(shape)
        for axis, factor in zip(axes, self.factors, strict=True):
            out[axis] = None if out[axis] is None else out[axis] * factor
        return tuple(out)


def _tensors(args, kwargs) -> list:
    return [t for t in keras.tree.flatten((args, kwargs)) if isinstance(t, keras.KerasTensor)]


class _Rebuilder:
    """Re-applies the layers of a (possibly nested) model to new symbolic tensors, recording each output."""

    def __init__(self, image, grids: dict[str, tuple[int, int, int]] | None = None) -> None:
        self.grids = dict(grids or {})
        self.aliases: dict[int, str] = {}  # token tensors routed through a grid → the grid's tap name
        self.taps: dict[str, object] = {}
        self.kinds: dict[str, str] = {}
        self.convolutions: set[str] = set()
        self.producers: dict[int, tuple[object, tuple, dict]] = {}
        self.owners: dict[str, int] = {}
        self.rank: dict[int, int] = {}
        self.names: set[str] = set()
        self.raw: set[int] = {id(image)}  # tensors that are the image, only rescaled / padded / cropped

    def rank_layers(self, model) -> None:
        """Remember the declared layer order (nested models expanded): the forward order users expect."""
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                self.rank_layers(layer)
            else:
                self.rank.setdefault(id(layer), len(self.rank))

    def _record(self, layer, outputs, args, kwargs, scope: str) -> None:
        flat = keras.tree.flatten(outputs)
        for tensor in flat:
            self.producers[id(tensor)] = (layer, args, kwargs)
        inputs = _tensors(args, kwargs)
        learned = bool(layer.weights) and not isinstance(layer, keras.layers.Normalization)
        if not learned and inputs and all(id(t) in self.raw for t in inputs):
            self.raw.update(id(t) for t in flat)
        self.names.add(layer.name)
        if len(flat) != 1 or len(flat[0].shape) not in (3, 4):
            return outputs
        name = layer.name
        if name in self.owners and self.owners[name] != id(layer):
            name = f"{scope}/{layer.name}" if scope else name
        if name in self.owners:  # shared layer called twice: keep its first use
            return outputs
        self.owners[name] = id(layer)
        self.taps[name] = flat[0]
        self.kinds[name] = _kind(layer)
        if _conv_kind(layer) is not None:
            self.convolutions.add(name)
        if name in self.grids and len(flat[0].shape) == 3:
            outputs = self._through_grid(name, flat[0], (layer, args, kwargs))
        return outputs

    def _through_grid(self, name: str, tokens, producer):
        """Route a token map through its (batch, h, w, channels) form, so gradients reach the tapped grid."""
        h, w, skip = self.grids[name]
        channels = tokens.shape[-1]
        grid = keras.ops.reshape(tokens[:, skip:, :] if skip else tokens, (-1, h, w, channels))
        back = keras.ops.reshape(grid, (-1, h * w, channels))
        if skip:
            back = keras.ops.concatenate([tokens[:, :skip, :], back], axis=1)
        self.taps[name] = grid
        self.aliases[id(back)] = name
        self.producers[id(grid)] = self.producers[id(back)] = producer
        if id(tokens) in self.raw:
            self.raw.update((id(grid), id(back)))
        return back

    def apply(self, op, args: tuple, kwargs: dict, scope: str):
        if isinstance(op, keras.Model):
            if not _is_graph_model(op):
                raise ExplainerError(
                    f"The nested model {op.name!r} is a subclassed Keras model, which cannot be inspected: "
                    "rebuild it with the functional API or as a Sequential model."
                )
            inner = args[0] if args else next(iter(kwargs.values()))
            return self.run(op, inner, scope=op.name)
        kwargs = {k: v for k, v in kwargs.items() if k != "training"}
        runner = op
        if isinstance(op, keras.layers.UpSampling2D) and op.interpolation != "nearest":
            inputs = _tensors(args, kwargs)
            if inputs and None in tuple(inputs[0].shape[1:3]):
                runner = _SizeFreeUpSampling(op)
        outputs = runner(*args, **kwargs)
        if isinstance(op, keras.layers.Layer):
            outputs = self._record(op, outputs, args, kwargs, scope)
        else:  # a keras.ops call in the graph: not a tap, but the region rule walks through it
            for tensor in keras.tree.flatten(outputs):
                self.producers.setdefault(id(tensor), (op, args, kwargs))
        return outputs

    def run(self, model, inputs, scope: str = ""):
        if isinstance(model, keras.Sequential):
            x = keras.tree.flatten(inputs)[0]
            for layer in model.layers:
                if isinstance(layer, keras.layers.InputLayer):
                    continue
                x = self.apply(layer, (x,), {}, scope)
            return x

        def operation_fn(op):
            return lambda *a, **kw: self.apply(op, a, kw, scope)

        outputs = model._run_through_graph(keras.tree.flatten(inputs), operation_fn=operation_fn)
        return outputs


def _input_spec(model) -> tuple[int | None, ...]:
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ExplainerError(
            "The model has no defined input: build it with an explicit input shape, e.g. keras.Input((H, W, 3))."
        )
    if len(inputs) != 1:
        raise ExplainerError(
            f"The model has {len(inputs)} inputs: use a model with a single image input."
        )
    shape = tuple(inputs[0].shape)
    if len(shape) != 4 or shape[-1] not in (1, 3, 4):
        raise ExplainerError(
            f"The model input has shape {shape}, which is not an image: use a model whose input is "
            "[batch, height, width, channels] with 1, 3 or 4 channels."
        )
    return shape


def _check_output(model) -> tuple[int | None, ...]:
    outputs = model.outputs
    if len(outputs) != 1:
        raise ExplainerError(
            f"The model has {len(outputs)} outputs: use a model with one per-pixel output [batch, H, W, classes]."
        )
    shape = tuple(outputs[0].shape)
    if len(shape) != 4 or shape[1] == 1 or shape[2] == 1 or shape[-1] is None:
        raise ExplainerError(
            f"The model output has shape {shape}, so it looks like a classifier, not a segmentation network: "
            "use a model whose output is per pixel, [batch, H, W, classes]."
        )
    return shape


def _linear_clone(layer, args: tuple, kwargs: dict):
    """A copy of a layer with a fused softmax/sigmoid, without that activation, same weights."""
    config = layer.get_config()
    config["activation"] = "linear"
    clone = layer.__class__.from_config(config)
    out = clone(*args, **kwargs)
    clone.set_weights(layer.get_weights())
    return out


def _as_two_classes(logit, head: str):
    """A single-channel head (binary segmentation) read as two classes, background and foreground.

    softmax([0, z]) = [1 - sigmoid(z), sigmoid(z)], so the foreground class keeps the model's own
    logit and probability, and every class index, label map and region works as for several classes.
    """
    logits = keras.layers.Concatenate(name="segexplain_two_class_logits")([keras.ops.zeros_like(logit), logit])
    probs = keras.layers.Activation("softmax", name="segexplain_two_class_probabilities")(logits)
    return logits, probs, f"{head}; one output channel read as two classes (0 = background, 1 = foreground)"


def _token_grid(tokens: int | None, spatial: list[tuple[int, int]], image: tuple) -> tuple[int, int, int] | None:
    """(h, w, skipped leading tokens) of a token map, inferred, or None.

    Tried in order: a spatial map of the same model with h·w = tokens (the patch grid itself); the
    input size divided by a stride s (⌈H/s⌉·⌈W/s⌉ = tokens); a square grid when the input is square
    or of unknown size. Each is tried on all tokens, then without a leading class token (tokens - 1).
    """
    if tokens is None:
        return None
    height, width = image
    for skip in (0, 1):
        count = tokens - skip
        if count < 1:
            continue
        grids = {(h, w) for h, w in spatial if h * w == count}
        if len(grids) == 1:
            return (*grids.pop(), skip)
        if height is not None and width is not None:
            for stride in range(1, _MAX_STRIDE + 1):
                h, w = -(-height // stride), -(-width // stride)
                if h * w == count:
                    return h, w, skip
        root = int(round(count**0.5))
        if root * root == count and (height is None or width is None or height == width):
            return root, root, skip
    return None


def _one_cell(flat: FlatGraph, name: str) -> bool:
    return tuple(_shape(flat, name)[1:3]) == (1, 1)


def _default_layer(flat: FlatGraph, producers: dict, output, names_by_tensor: dict[int, str]) -> str | None:
    """The deepest layer that answers the drawn region, else the feature map the classifier reads (see
    `default_layer`)."""
    classes = output.shape[-1]
    answering = [n for n in flat.explainable if n in flat.answers_region
                 and flat.taps[n].shape[-1] != classes and not _one_cell(flat, n)]
    if answering:
        return answering[-1]
    tensor, seen = output, 0
    while seen < 64:
        seen += 1
        producer = producers.get(id(tensor))
        if producer is None:
            break
        layer, args, kwargs = producer
        inputs = [t for t in _tensors(args, kwargs) if len(t.shape) in (3, 4)]
        if len(inputs) != 1:
            break
        tensor = inputs[0]
        if tensor.shape[-1] == classes:
            continue  # still class scores (the classifier's output, resized or squashed)
        while True:  # the classifier's input: step back over resizing and dropout
            back = producers.get(id(tensor))
            if back is None or type(back[0]).__name__ not in _PASS_THROUGH:
                break
            before = [t for t in _tensors(back[1], back[2]) if len(t.shape) in (3, 4)]
            if len(before) != 1 or names_by_tensor.get(id(before[0])) not in flat.explainable:
                break
            tensor = before[0]
        name = names_by_tensor.get(id(tensor))
        if name in flat.explainable:
            return name
        break
    features = [n for n in flat.explainable if flat.taps[n].shape[-1] != classes]
    return (features or flat.explainable or [None])[-1]


def flatten(model) -> FlatGraph:
    """The flat graph of `model`, built once and cached for as long as the model object lives.

    Token layers whose grid is known are routed through their grid form; a first rebuild finds the
    grids, a second one (only for models with such layers) puts the reshapes into the graph.
    """
    return _FLAT_CACHE.get(model, "flat", lambda: _build_flat(model))


def _build_flat(model) -> FlatGraph:
    grids = dict(_USER_GRIDS.get(model, {}))
    flat = _rebuild(model, grids)
    found = {**flat.token_grids, **grids}
    if found != grids:
        flat = _rebuild(model, found)
    return flat


def _rebuild(model, grids: dict[str, tuple[int, int, int]]) -> FlatGraph:
    shape = _input_spec(model)
    _check_output(model)
    if not _is_graph_model(model):
        raise ExplainerError(
            "The model is a subclassed Keras model, which cannot be inspected: "
            "rebuild it with the functional API or as a Sequential model."
        )
    fresh = keras.Input(shape=shape[1:], name="segexplain_image")
    rebuilder = _Rebuilder(fresh, grids)
    rebuilder.rank_layers(model)
    output = keras.tree.flatten(rebuilder.run(model, fresh))[0]

    producer = rebuilder.producers.get(id(output))
    layer, args, kwargs = producer if producer else (None, (), {})
    squash = _activation_name(layer) if layer is not None else ""
    after_logits: set[int] = set()
    roots = [(output, False)]  # where the region rule's walk starts: the logits
    if layer is not None and squash in _SQUASHERS and isinstance(layer, keras.layers.Activation | keras.layers.Softmax):
        logits, probs, head = args[0], output, f"{squash} layer"
        after_logits.add(id(output))
        roots = [(logits, False)]
    elif layer is not None and squash in _SQUASHERS:
        roots = [(t, type(layer).__name__ not in region_rule.POSITION_UNIFORM) for t in _tensors(args, kwargs)]
        logits = _linear_clone(layer, args, kwargs)
        probs = keras.layers.Activation(squash, name="segexplain_probabilities")(logits)
        head = f"fused {squash}"
        for name, tensor in list(rebuilder.taps.items()):
            if tensor is output:
                rebuilder.taps[name] = logits
    else:
        logits, head = output, "linear"
        squash = "softmax" if output.shape[-1] > 1 else "sigmoid"
        probs = keras.layers.Activation(squash, name="segexplain_probabilities")(logits)
        head = f"linear (probabilities by {squash})"
    if logits.shape[-1] == 1:
        logits, probs, head = _as_two_classes(logits, head)
    order = sorted(rebuilder.taps, key=lambda name: rebuilder.rank.get(rebuilder.owners[name], len(rebuilder.rank)))
    taps = {name: rebuilder.taps[name] for name in order}
    flat = FlatGraph(input=fresh, logits=logits, probabilities=probs, head=head, taps=taps, kinds=rebuilder.kinds)
    flat.convolutions = [name for name in taps if name in rebuilder.convolutions]
    spatial = [(t.shape[1], t.shape[2]) for t in taps.values() if len(t.shape) == 4 and None not in t.shape[1:3]]
    for name, tensor in taps.items():
        if id(tensor) in after_logits:
            flat.refused[name] = "comes after the class logits (it holds probabilities), so no gradient of the " \
                                 "logits reaches it"
        elif id(tensor) in rebuilder.raw:
            flat.refused[name] = "only preprocesses the image (nothing learned before it)"
        elif name in grids and len(tensor.shape) == 4:  # a token layer already routed through its grid
            flat.token_grids[name] = grids[name]
            flat.explainable.append(name)
        elif len(tensor.shape) == 3:
            grid = _token_grid(tensor.shape[1], spatial, (shape[1], shape[2]))
            if grid is None:
                flat.refused[name] = (
                    f"outputs {tensor.shape[1] or 'a variable number of'} tokens that do not form an h×w grid of "
                    "this model's input"
                )
                continue
            flat.token_grids[name] = grid
            flat.explainable.append(name)
        else:
            flat.explainable.append(name)
    names_by_tensor = {**rebuilder.aliases, **{id(tensor): name for name, tensor in reversed(taps.items())}}
    answering = region_rule.answering_tensors(roots, rebuilder.producers)
    flat.answers_region = {names_by_tensor[i] for i in answering if names_by_tensor.get(i) in flat.explainable}
    flat.default = _default_layer(flat, rebuilder.producers, output, names_by_tensor)
    flat.names = rebuilder.names
    return flat


def set_token_grid(model, layer: str, grid: tuple[int, int], skip: int = 0) -> None:
    """Give the h×w patch grid of token layer `layer` where it cannot be inferred (call before explaining).

    `skip` leading tokens (e.g. 1 for a ViT class token) are dropped before the reshape.
    """
    flat = flatten(model)
    tensor = flat.taps.get(layer)
    if layer in flat.token_grids:
        gh, gw, gskip = flat.token_grids[layer]
        tokens = gh * gw + gskip
    elif tensor is not None and len(tensor.shape) == 3:
        tokens = tensor.shape[1]
    else:
        raise ExplainerError(f"Layer {layer!r} is not a token layer (batch, tokens, channels) of this model.")
    h, w = (int(v) for v in grid)
    if h < 1 or w < 1 or (tokens is not None and h * w + skip != tokens):
        raise ExplainerError(
            f"A {h}×{w} grid (+{skip} skipped) does not fit the {tokens} tokens of layer {layer!r}: "
            "give h and w with h·w + skip = tokens."
        )
    _USER_GRIDS.setdefault(model, {})[layer] = (h, w, int(skip))
    _FLAT_CACHE.forget(model)  # rebuilt with the grid on the next use


def _shape(flat: FlatGraph, name: str) -> tuple[int | None, ...]:
    tensor = flat.taps[name]
    if name in flat.token_grids:
        h, w, _skip = flat.token_grids[name]
        return (tensor.shape[0], h, w, tensor.shape[-1])
    return tuple(tensor.shape)


def _info(flat: FlatGraph, name: str) -> LayerInfo:
    kind = flat.kinds[name]
    if name in flat.token_grids:
        h, w, skip = flat.token_grids[name]
        kind = f"tokens of {kind} as {h}×{w}" + (f" (first {skip} token dropped)" if skip else "")
    return LayerInfo(name=name, output_shape=_shape(flat, name), kind=kind)


def explainable_layers(model) -> list[LayerInfo]:
    """Every layer whose output is a spatial feature map or a token map on the patch grid, in forward order.

    Nested models are expanded; preprocessing layers and the probabilities after the logits are left
    out (see the module docstring).
    """
    if (engine := _foreign(model)) is not None:
        return engine.layers()
    flat = flatten(model)
    return [_info(flat, name) for name in flat.explainable]


def working_shapes(model, image_size: tuple[int, int]) -> dict[str, tuple[int | None, ...]]:
    """The output shape of each spatial layer whose size depends on the input (a free-size model) at
    `image_size` (height, width), inferred symbolically by Keras (no forward pass). Empty for a model that
    is not a Keras model (a PyTorch engine's runs at its one input size), when nothing is free, or when
    Keras cannot infer the shapes."""
    if not isinstance(model, keras.Model):
        return {}
    flat = flatten(model)
    free = [name for name in flat.explainable
            if name not in flat.token_grids and any(d is None for d in tuple(flat.taps[name].shape)[1:3])]
    if not free:
        return {}
    try:
        probe = keras.Model(flat.input, [flat.taps[name] for name in free])
        specs = probe.compute_output_spec(
            keras.KerasTensor((1, *image_size, int(flat.input.shape[-1])), dtype="float32"))
    except Exception:  # noqa: BLE001  (a graph Keras cannot infer: callers show "?" as before)
        return {}
    specs = specs if isinstance(specs, list | tuple) else [specs]
    return {name: tuple(spec.shape) for name, spec in zip(free, specs, strict=True)}


def layer_stages(model) -> list[Stage]:
    """The explainable layers grouped by output resolution, stages in order of first appearance.

    Each stage is labelled with its grid and, where the input size is known, its stride, e.g.
    "stage 3 · 16×16 (1/8 of the input)"; a 300-layer backbone becomes a handful of groups.
    """
    if (engine := _foreign(model)) is not None:
        return engine.stages()
    flat = flatten(model)
    return group_stages([_info(flat, name) for name in flat.explainable], tuple(flat.input.shape[1:3]))


def group_stages(infos: list[LayerInfo], input_size: tuple[int | None, int | None]) -> list[Stage]:
    """`layer_stages`' rule for any engine's layers (channels-last shapes (B, h, w, K))."""
    height, width = input_size
    groups: dict[tuple, list[LayerInfo]] = {}
    for info in infos:
        groups.setdefault(tuple(info.output_shape[1:3]), []).append(info)
    stages = []
    for number, (size, members) in enumerate(groups.items(), start=1):
        h, w = size
        text = f"{'?' if h is None else h}×{'?' if w is None else w}"
        if h and height and w and width and height % h == 0 and width % w == 0 and height // h == width // w:
            stride = height // h
            text += " (input size)" if stride == 1 else f" (1/{stride} of the input)"
        label = f"stage {number} · {text} · {len(members)} layer{'s' if len(members) != 1 else ''}"
        stages.append(Stage(label=label, size=size, layers=members))
    return stages


def default_layer(model) -> str:
    """The layer CAMs explain when none is given: the deepest one whose Grad-CAM answers the drawn region.

    Rule (`explainers.region_rule`): the deepest explainable layer, in forward order, with a non-linear
    layer (an activation, separate or fused; a product of maps; a per-position normalisation) between
    it and the class logits, leaving out maps with one channel per class and 1×1 maps. A layer followed
    only by position-uniform layers (a 1×1 classifier, batch normalisation, pooling, resizing) gives
    the same Grad-CAM for every region, so the last convolution before a linear classifier is not the
    default (on the shipped network: `head_concat`, the input of `final_conv`). A model with no such
    layer (a linear network) falls back to the feature map the classifier reads: walking back from the
    output over the layers that still carry one score per class (softmax, resizing, the classifier),
    the first layer with another channel count, stepping back over resizing and dropout; if that walk
    fails, the last explainable layer whose channels are not the classes. PyTorch models keep their
    engine's rule (the last map whose channels are not the classes).
    """
    if (engine := _foreign(model)) is not None:
        return engine.default_layer()
    flat = flatten(model)
    if flat.default is None:
        raise ExplainerError("The model has no explainable feature map: use a convolutional segmentation network.")
    return flat.default


def answers_region(model) -> list[str] | None:
    """The explainable layers whose Grad-CAM the drawn region changes, by `region_rule`'s graph rule, in
    forward order; None for a model whose engine cannot tell (PyTorch)."""
    if _foreign(model) is not None:
        return None
    flat = flatten(model)
    return [name for name in flat.explainable if name in flat.answers_region]


def inspect_model(model) -> ModelSummary:
    """Accept or reject a model for explanation, with a one-sentence reason on rejection."""
    if (engine := _foreign(model)) is not None:
        return engine.summary()
    if not isinstance(model, keras.Model):
        if any(c.__module__.startswith("torch") for c in type(model).__mro__):
            raise ExplainerError(
                f"Got a PyTorch {type(model).__name__}: wrap it with explainers.from_torch(module, "
                "input_size=(H, W), mean=(r, g, b), std=(r, g, b)).")
        raise ExplainerError(f"Expected a Keras model, got {type(model).__name__}: load the model with Keras 3.")
    in_shape = _input_spec(model)
    out_shape = _check_output(model)
    flat = flatten(model)
    if not flat.convolutions or not flat.explainable:
        raise ExplainerError("The model has no 2-D convolution layer: use a convolutional segmentation network.")
    return ModelSummary(
        input_size=(in_shape[1], in_shape[2]),
        num_classes=int(flat.logits.shape[-1]),
        output_size=(out_shape[1], out_shape[2]),
        layers=explainable_layers(model),
        head=flat.head,
        channels=int(in_shape[-1]),
    )


def check_layer(model, layer: str) -> str:
    """Return `layer` if CAMs can use it, else raise an ExplainerError naming valid choices."""
    if (engine := _foreign(model)) is not None:
        return engine.check_layer(layer)
    flat = flatten(model)
    if layer in flat.explainable:
        return layer
    examples = ", ".join(flat.explainable[-4:])
    if layer in flat.refused:
        extra = (
            f" (or give its grid with explainers.graph.set_token_grid(model, {layer!r}, (h, w)))"
            if len(flat.taps[layer].shape) == 3 else ""
        )
        raise ExplainerError(f"Layer {layer!r} {flat.refused[layer]}: pick a feature map such as {examples}{extra}.")
    if layer in flat.names:
        raise ExplainerError(
            f"Layer {layer!r} does not output a feature map (batch, h, w, channels) or a token map "
            f"(batch, tokens, channels): pick a feature map such as {examples}."
        )
    raise ExplainerError(f"The model has no layer named {layer!r}: pick one of its feature maps, e.g. {examples}.")


def tap_model(model, layer_names=(), target: str = "logits") -> keras.Model:
    """A model returning `[scores_map (B,h,w,C), *activations]`; scores are logits or probabilities.

    Token layers come out as (B, h, w, channels) on their patch grid (the graph is routed through that form).
    """
    if target not in ("logits", "probabilities"):
        raise ExplainerError(f"Unknown target {target!r}: use 'logits' or 'probabilities'.")
    if _foreign(model) is not None:
        raise ExplainerError("tap_model builds a Keras model: it does not apply to a PyTorch model.")
    flat = flatten(model)
    names = [check_layer(model, name) for name in layer_names]
    scores = flat.logits if target == "logits" else flat.probabilities
    return keras.Model(flat.input, [scores, *[flat.taps[name] for name in names]])
