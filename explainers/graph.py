"""Graph surgery: turn any accepted Keras model into one flat functional graph whose tensors can be tapped.

Why: attribution methods need the activations of an inner layer and the per-pixel pre-activation
scores from the same forward pass. Keras 3 makes that awkward for Sequential models, for layers
inside a nested sub-model (a `keras.applications` backbone used as one layer) and for heads with a
fused softmax. So every model is rebuilt once, by re-applying its (shared, unmodified) layers to a
fresh `keras.Input`, recursing into nested models; every layer output becomes a tensor we can ask
for. The user's model object is never changed: a fused head is replaced in our copy by a linear
clone whose weights are copied from the original.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import keras

from explainers.errors import ExplainerError

_CONV_KINDS: tuple[tuple[type, str], ...] = (
    (keras.layers.SeparableConv2D, "separable conv"),
    (keras.layers.DepthwiseConv2D, "depthwise conv"),
    (keras.layers.Conv2DTranspose, "transposed conv"),
    (keras.layers.Conv2D, "conv"),
)
_SQUASHERS = ("softmax", "sigmoid")


@dataclass(frozen=True)
class LayerInfo:
    """One explainable layer: its name (as inside its own sub-model), output shape and kind of layer."""

    name: str
    output_shape: tuple[int | None, ...]
    kind: str


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
    """The rebuilt graph: one input, per-pixel logits and probabilities, and every layer's output."""

    input: object
    logits: object
    probabilities: object
    head: str
    taps: dict[str, object] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)


_FLAT_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _conv_kind(layer) -> str | None:
    for cls, kind in _CONV_KINDS:
        if isinstance(layer, cls):
            return kind
    return None


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


class _Rebuilder:
    """Re-applies the layers of a (possibly nested) model to new symbolic tensors, recording each output."""

    def __init__(self) -> None:
        self.taps: dict[str, object] = {}
        self.kinds: dict[str, str] = {}
        self.producers: dict[int, tuple[object, tuple, dict]] = {}
        self.owners: dict[str, int] = {}
        self.rank: dict[int, int] = {}

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
        if len(flat) != 1 or len(flat[0].shape) != 4:
            return
        name = layer.name
        if name in self.owners and self.owners[name] != id(layer):
            name = f"{scope}/{layer.name}" if scope else name
        if name in self.owners:  # shared layer called twice: keep its first use
            return
        self.owners[name] = id(layer)
        self.taps[name] = flat[0]
        kind = _conv_kind(layer)
        if kind is not None:
            self.kinds[name] = kind

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
        outputs = op(*args, **kwargs)
        if isinstance(op, keras.layers.Layer):
            self._record(op, outputs, args, kwargs, scope)
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


def flatten(model) -> FlatGraph:
    """The flat graph of `model`, built once and cached for as long as the model object lives."""
    cached = _FLAT_CACHE.get(model)
    if cached is not None:
        return cached
    shape = _input_spec(model)
    _check_output(model)
    if not _is_graph_model(model):
        raise ExplainerError(
            "The model is a subclassed Keras model, which cannot be inspected: "
            "rebuild it with the functional API or as a Sequential model."
        )
    fresh = keras.Input(shape=shape[1:], name="segexplain_image")
    rebuilder = _Rebuilder()
    rebuilder.rank_layers(model)
    output = keras.tree.flatten(rebuilder.run(model, fresh))[0]

    producer = rebuilder.producers.get(id(output))
    layer, args, kwargs = producer if producer else (None, (), {})
    squash = _activation_name(layer) if layer is not None else ""
    if layer is not None and squash in _SQUASHERS and isinstance(layer, keras.layers.Activation | keras.layers.Softmax):
        logits, probs, head = args[0], output, f"{squash} layer"
    elif layer is not None and squash in _SQUASHERS:
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
    _FLAT_CACHE[model] = flat
    return flat


def explainable_layers(model) -> list[LayerInfo]:
    """2-D convolution layers (nested ones included) in forward order: the layers a CAM can explain."""
    flat = flatten(model)
    return [
        LayerInfo(name=name, output_shape=tuple(flat.taps[name].shape), kind=flat.kinds[name])
        for name in flat.taps
        if name in flat.kinds
    ]


def default_layer(model) -> str:
    """`final_conv` when the model has it (the paper's choice), else the last convolution layer."""
    names = [info.name for info in explainable_layers(model)]
    if not names:
        raise ExplainerError("The model has no 2-D convolution layer: use a convolutional segmentation network.")
    return "final_conv" if "final_conv" in names else names[-1]


def inspect_model(model) -> ModelSummary:
    """Accept or reject a model for explanation, with a one-sentence reason on rejection."""
    if not isinstance(model, keras.Model):
        raise ExplainerError(f"Expected a Keras model, got {type(model).__name__}: load the model with Keras 3.")
    in_shape = _input_spec(model)
    out_shape = _check_output(model)
    layers = explainable_layers(model)
    if not layers:
        raise ExplainerError("The model has no 2-D convolution layer: use a convolutional segmentation network.")
    return ModelSummary(
        input_size=(in_shape[1], in_shape[2]),
        num_classes=int(flatten(model).logits.shape[-1]),
        output_size=(out_shape[1], out_shape[2]),
        layers=layers,
        head=flatten(model).head,
        channels=int(in_shape[-1]),
    )


def check_layer(model, layer: str) -> str:
    """Return `layer` if CAMs can use it, else raise an ExplainerError naming valid choices."""
    flat = flatten(model)
    valid = [info.name for info in explainable_layers(model)]
    if layer in flat.kinds:
        return layer
    examples = ", ".join(valid[-4:])
    if layer in flat.taps:
        raise ExplainerError(
            f"Layer {layer!r} is not a 2-D convolution layer: pick a convolution layer such as {examples}."
        )
    raise ExplainerError(f"The model has no layer named {layer!r}: pick one of its convolution layers, e.g. {examples}.")


def tap_model(model, layer_names=(), target: str = "logits") -> keras.Model:
    """A model returning `[scores_map (B,h,w,C), *activations]`; scores are logits or probabilities."""
    if target not in ("logits", "probabilities"):
        raise ExplainerError(f"Unknown target {target!r}: use 'logits' or 'probabilities'.")
    flat = flatten(model)
    names = [check_layer(model, name) for name in layer_names]
    scores = flat.logits if target == "logits" else flat.probabilities
    return keras.Model(flat.input, [scores, *[flat.taps[name] for name in names]])
