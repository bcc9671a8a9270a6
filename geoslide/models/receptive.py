"""The receptive field of a segmentation model: how much input one output pixel can see.

Tiled inference must overlap tiles by at least half the receptive field, or pixels near tile
edges differ from a prediction on the whole scene. :func:`receptive_field` returns a guaranteed
upper bound, found by autograd on a "monotone" twin of the model (the model itself is left as it was):

- every weight is replaced by a positive constant (biases by zero), and the model runs in float64 and eval mode;
- while it runs, a torch function mode replaces every operation whose derivative can vanish or
  change sign by one with the same input-output dependency and a positive derivative: max pooling
  becomes average pooling, activations and clamps the identity, subtraction addition, element-wise
  maximum a sum, normalisations and softmax ``x + mean(x)`` over the normalised dimensions, and
  attention a sum over all keys and values;
- to keep it cheap, convolutions (and linear layers) first average their input channels and produce
  one channel, which can only add dependencies; a model that needs its channel counts (a reshape by
  heads, a split) is run again at full width.

Then no gradient can cancel, and the gradient of a block of ``size_multiple x size_multiple``
output pixels (every pooling phase) is non-zero exactly on the inputs they structurally depend on;
taking the farthest of them from either end of the block over-estimates the reach of a single pixel
by less than ``size_multiple``. The probe input grows until that support stays clear of its border.
Operations that select values by a data-dependent index (``where``, ``topk``, max unpooling, ...)
are not modelled: the function then returns None, as it does for global attention.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torch.overrides import TorchFunctionMode

from geoslide.errors import ModelError

_MISSING = object()

Handler = Callable[[tuple[Any, ...], dict[str, Any]], Any]


class _Unsupported(Exception):
    """The model uses an operation whose dependencies the monotone mode does not model."""


def receptive_field(model: nn.Module, in_channels: int, *, max_size: int = 1024) -> int | None:
    """Width in pixels of the square input window centred on an output pixel that holds every input it depends on.

    Parameters
    ----------
    model
        A segmentation model (see :func:`geoslide.models.build_model`). An attribute
        ``receptive_field`` on it (an int, or None for global models) is returned as is.
    in_channels
        Input bands the model takes.
    max_size
        Largest probe input (pixels per side); a model that sees further is treated as global.

    Returns
    -------
    int or None
        An odd width ``2 * r + 1``: no input more than ``r`` pixels (in x or y) from an output
        pixel can change it. None if the model is global (attention) or sees beyond ``max_size / 2``.
    """
    override = getattr(model, "receptive_field", _MISSING)
    if override is not _MISSING:
        return None if override is None else int(override)
    multiple = int(getattr(model, "size_multiple", 1))
    flags = {m: m.training for m in model.modules()}
    model.eval()
    try:
        try:
            return _grow(model, in_channels, multiple, max_size, collapse=True)
        except (RuntimeError, ValueError, TypeError, IndexError):  # the model needs its channel counts
            return _grow(model, in_channels, multiple, max_size, collapse=False)
    except _Unsupported:
        return None
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise ModelError(f"cannot run the model on {in_channels} bands to find its receptive field: {exc}") from exc
    finally:
        for module, training in flags.items():
            module.training = training


def _grow(model: nn.Module, in_channels: int, multiple: int, max_size: int, *, collapse: bool) -> int | None:
    """Reach on ever larger probe inputs until the support is not clipped; None beyond ``max_size``."""
    state = _monotone_state(model)
    size = -(-max(64, 4 * multiple) // multiple) * multiple
    while size <= max_size:
        reach = _reach(model, state, in_channels, size, multiple, collapse)
        if reach is not None:
            return 2 * reach + 1
        size *= 2
    return None


def _monotone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Float64 stand-ins for the parameters (positive constants, biases zero) and floating buffers (absolute values).

    Parameters are broadcast views of one number, so this costs no memory whatever the model size.
    """
    state = {}
    for name, param in model.named_parameters():
        value = 0.0 if name.rsplit(".", 1)[-1] == "bias" else 1.0 / param[0].numel() if param.ndim >= 2 else 1.0
        state[name] = torch.tensor(value, dtype=torch.float64, device=param.device).expand(param.shape)
    for name, buffer in model.named_buffers():
        if buffer.is_floating_point():
            state[name] = buffer.detach().abs().to(torch.float64)
    return state


def _reach(model: nn.Module, state: dict[str, torch.Tensor], in_channels: int, size: int, multiple: int,
           collapse: bool) -> int | None:
    """Largest x or y distance from a central output block to an input it depends on; None if clipped."""
    device = next(iter(state.values())).device if state else None
    x = torch.ones(1, in_channels, size, size, dtype=torch.float64, device=device, requires_grad=True)
    start = (size // 2) // multiple * multiple
    block = slice(start, start + multiple)
    with torch.enable_grad():
        with _MonotoneMode(collapse):
            out = torch.func.functional_call(model, state, (x,))
        out = out[0] if isinstance(out, tuple | list) else out
        (grad,) = torch.autograd.grad(out[..., block, block].sum(), x, allow_unused=True)
    hit = grad[0].abs().sum(dim=0) > 0 if grad is not None else torch.zeros(size, size, dtype=torch.bool)
    if not hit.any():
        return 0
    rows = hit.any(dim=1).nonzero().flatten()
    cols = hit.any(dim=0).nonzero().flatten()
    lo, hi = int(min(rows.min(), cols.min())), int(max(rows.max(), cols.max()))
    if lo < multiple or hi > size - 1 - multiple:
        return None
    return max(start + multiple - 1 - lo, hi - start)


def _input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The first (tensor) argument of a call."""
    return args[0] if args else kwargs["input"]


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any = None) -> Any:
    """Argument ``name`` given at position ``index`` or as a keyword."""
    return args[index] if len(args) > index else kwargs.get(name, default)


def _plus_mean(x: torch.Tensor, dims: Any) -> torch.Tensor:
    """``x + mean(x)`` over ``dims`` (all dims if None): same dependencies as a normalisation, positive derivative."""
    dims = tuple(range(x.ndim)) if dims is None else dims
    return x + x.mean(dim=dims, keepdim=True)


def _sum_of_two(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``a + b`` for subtraction: the same dependencies, a positive derivative in both."""
    return _input(args, kwargs) + _arg(args, kwargs, 1, "other")


def _extreme(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``a + b`` for an element-wise maximum or minimum of two tensors; reductions are not modelled."""
    other = _arg(args, kwargs, 1, "other")
    if not isinstance(other, torch.Tensor):
        raise _Unsupported("a max or min reduction")
    return _input(args, kwargs) + other


def _power(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Element-wise for a number exponent (the identity), else ``a * b``."""
    other = _arg(args, kwargs, 1, "exponent")
    return _input(args, kwargs) * other if isinstance(other, torch.Tensor) else _input(args, kwargs)


def _spread(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The mean over the same dimensions for a standard deviation or variance (tuples for ``*_mean``)."""
    x, dim = _input(args, kwargs), _arg(args, kwargs, 1, "dim")
    keepdim = kwargs.get("keepdim", args[-1] if len(args) > 2 and isinstance(args[-1], bool) else False)
    if isinstance(dim, bool):  # legacy ``std(x, unbiased)``
        dim = None
    return x.mean() if dim is None else x.mean(dim=dim, keepdim=keepdim)


def _product(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``a * |b|`` for a number ``b``, else ``a * b``: multiplication and division alike."""
    other = _arg(args, kwargs, 1, "other")
    other = abs(other) if isinstance(other, numbers.Number) else other
    return _input(args, kwargs) * other


def _max_pool(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Average pooling with the geometry of a max pooling call."""
    x = _input(args, kwargs)
    kernel, stride = _arg(args, kwargs, 1, "kernel_size"), _arg(args, kwargs, 2, "stride")
    padding, dilation = _arg(args, kwargs, 3, "padding", 0), _arg(args, kwargs, 4, "dilation", 1)
    ceil_mode, indices = _arg(args, kwargs, 5, "ceil_mode", False), _arg(args, kwargs, 6, "return_indices", False)
    if indices or any(d != 1 for d in (dilation if isinstance(dilation, tuple | list) else [dilation])):
        raise _Unsupported("max pooling with indices or dilation")
    pool = {3: F.avg_pool1d, 4: F.avg_pool2d, 5: F.avg_pool3d}[x.ndim if x.ndim > 2 else 3]
    return pool(x, kernel, stride, padding, ceil_mode)


def _adaptive_max_pool(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Adaptive average pooling to the output size of an adaptive max pooling call."""
    x, size = _input(args, kwargs), _arg(args, kwargs, 1, "output_size")
    if _arg(args, kwargs, 2, "return_indices", False):
        raise _Unsupported("adaptive max pooling with indices")
    pool = {3: F.adaptive_avg_pool1d, 4: F.adaptive_avg_pool2d, 5: F.adaptive_avg_pool3d}[x.ndim if x.ndim > 2 else 3]
    return pool(x, size)


def _batch_norm(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Identity with running statistics; ``x + mean`` over batch and space with batch statistics."""
    x, running = _input(args, kwargs), _arg(args, kwargs, 1, "running_mean")
    if running is not None and not _arg(args, kwargs, 5, "training", False):
        return x
    return _plus_mean(x, (0, *range(2, x.ndim)))


def _layer_norm(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``x + mean`` over the normalised trailing dimensions."""
    x, shape = _input(args, kwargs), _arg(args, kwargs, 1, "normalized_shape")
    count = 1 if isinstance(shape, int) else len(shape)
    return _plus_mean(x, tuple(range(x.ndim - count, x.ndim)))


def _instance_norm(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``x + mean`` over space when instance statistics are used."""
    x = _input(args, kwargs)
    return _plus_mean(x, tuple(range(2, x.ndim))) if _arg(args, kwargs, 5, "use_input_stats", True) else x


def _group_norm(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``x + mean`` over channels and space (a superset of the groups)."""
    x = _input(args, kwargs)
    return _plus_mean(x, tuple(range(1, x.ndim)))


def _softmax(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``x + mean`` along the softmax dimension."""
    dim = _arg(args, kwargs, 1, "dim")
    return _plus_mean(_input(args, kwargs), None if dim is None else (dim,))


def _attention(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Every query position depends on its query and on all keys and values."""
    q, k, v = (_arg(args, kwargs, i, n) for i, n in enumerate(("query", "key", "value")))
    return q.sum(-1, keepdim=True) + k.sum((-2, -1), keepdim=True) + v.mean(-2, keepdim=True)


def _unsupported(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Refuse: the operation picks values by a data-dependent index."""
    raise _Unsupported("an index-selecting operation")


def _identity(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The input: an element-wise operation, same dependencies."""
    return _input(args, kwargs)


_IDENTITY = (
    "relu relu_ relu6 leaky_relu leaky_relu_ gelu silu elu elu_ selu celu mish softplus softsign sigmoid sigmoid_ "
    "tanh tanh_ hardtanh hardtanh_ hardsigmoid hardswish logsigmoid clamp clamp_ clip clip_ clamp_min clamp_max neg "
    "negative __neg__ prelu reciprocal detach rsqrt floor ceil round trunc sign dropout dropout2d alpha_dropout"
)
_UNSUPPORTED = (
    "where masked_fill masked_fill_ masked_scatter topk sort argsort kthvalue median nanmedian amax amin cummax cummin "
    "max_unpool1d max_unpool2d max_unpool3d grid_sample multi_head_attention_forward gather scatter index_select"
)
_HANDLERS: dict[str, Handler] = {
    **dict.fromkeys(_IDENTITY.split(), _identity),
    **dict.fromkeys(_UNSUPPORTED.split(), _unsupported),
    **dict.fromkeys("sub sub_ __sub__ __isub__ __rsub__ rsub subtract".split(), _sum_of_two),
    **dict.fromkeys("maximum minimum fmax fmin max min".split(), _extreme),
    **dict.fromkeys("pow __pow__ __rpow__ float_power".split(), _power),
    **dict.fromkeys("std var".split(), _spread),
    **dict.fromkeys("mul __mul__ __rmul__ multiply div __truediv__ __rtruediv__ divide true_divide".split(), _product),
    **dict.fromkeys("max_pool1d max_pool2d max_pool3d max_pool2d_with_indices".split(), _max_pool),
    **dict.fromkeys("adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool3d".split(), _adaptive_max_pool),
    **dict.fromkeys("softmax log_softmax softmin".split(), _softmax),
    **dict.fromkeys("layer_norm rms_norm".split(), _layer_norm),
    "batch_norm": _batch_norm,
    "instance_norm": _instance_norm,
    "group_norm": _group_norm,
    "local_response_norm": lambda args, kwargs: _plus_mean(_input(args, kwargs), (1,)),
    "normalize": lambda args, kwargs: _plus_mean(_input(args, kwargs), (_arg(args, kwargs, 2, "dim", 1),)),
    "std_mean": lambda args, kwargs: (_spread(args, kwargs),) * 2,
    "var_mean": lambda args, kwargs: (_spread(args, kwargs),) * 2,
    "scaled_dot_product_attention": _attention,
}


def _collapsed_conv(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A one-channel convolution of the channel mean with an averaging kernel of the same geometry."""
    x, weight = _input(args, kwargs), _arg(args, kwargs, 1, "weight")
    stride, padding = _arg(args, kwargs, 3, "stride", 1), _arg(args, kwargs, 4, "padding", 0)
    dilation = _arg(args, kwargs, 5, "dilation", 1)
    kernel = torch.ones((1, 1, *weight.shape[2:]), dtype=x.dtype, device=x.device) / weight[0, 0].numel()
    conv = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[weight.ndim]
    return conv(x.mean(dim=x.ndim - weight.ndim + 1, keepdim=True), kernel, None, stride, padding, dilation)


def _collapsed_conv_transpose(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A one-channel transposed convolution of the channel mean with an averaging kernel of the same geometry."""
    x, weight = _input(args, kwargs), _arg(args, kwargs, 1, "weight")
    stride, padding = _arg(args, kwargs, 3, "stride", 1), _arg(args, kwargs, 4, "padding", 0)
    output_padding, dilation = _arg(args, kwargs, 5, "output_padding", 0), _arg(args, kwargs, 7, "dilation", 1)
    kernel = torch.ones((1, 1, *weight.shape[2:]), dtype=x.dtype, device=x.device) / weight[0, 0].numel()
    conv = {3: F.conv_transpose1d, 4: F.conv_transpose2d, 5: F.conv_transpose3d}[weight.ndim]
    x = x.mean(dim=x.ndim - weight.ndim + 1, keepdim=True)
    return conv(x, kernel, None, stride, padding, output_padding, 1, dilation)


_COLLAPSING: dict[str, Handler] = {
    **dict.fromkeys("conv1d conv2d conv3d".split(), _collapsed_conv),
    **dict.fromkeys("conv_transpose1d conv_transpose2d conv_transpose3d".split(), _collapsed_conv_transpose),
    "linear": lambda args, kwargs: _input(args, kwargs).mean(dim=-1, keepdim=True),
    "prelu": _identity,
}


class _MonotoneMode(TorchFunctionMode):
    """Runs each operation in :data:`_HANDLERS` as its monotone stand-in, others unchanged.

    With ``collapse``, convolutions and linear layers also average their input channels into one
    output channel (:data:`_COLLAPSING`): a superset of every channel's dependencies, at a fraction of the cost.
    """

    def __init__(self, collapse: bool) -> None:
        super().__init__()
        self.handlers = {**_HANDLERS, **_COLLAPSING} if collapse else _HANDLERS

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        handler = self.handlers.get(getattr(func, "__name__", ""))
        return handler(args, kwargs) if handler is not None else func(*args, **kwargs)
