"""Built-in encoders as stages: torchvision's ResNets and any timm feature extractor.

``resnet18`` / ``resnet34`` / ``resnet50`` are torchvision's networks (``weights=None``:
nothing is downloaded) cut into four stages at the points where their resolution halves:

    stage 0: conv1, bn1, relu, maxpool, layer1   (1/4 of the input)
    stage 1: layer2                              (1/8)
    stage 2: layer3                              (1/16)
    stage 3: layer4                              (1/32)

Each stage names its modules as torchvision does, so a torchvision state dict's keys
(``conv1.weight``, ``layer1.0.conv1.weight``, ...) are the stages' own (``backbone.weights``).
``output_stride: 16`` or ``8`` dilates layer4 (and layer3) instead of striding them
(as torchvision's ``replace_stride_with_dilation``), the usual encoder for dense tasks.
An input with other than 3 channels gets a fresh ``conv1`` for its channels.

``timm`` builds ``timm.create_model(model, features_only=True)`` (``pip install
'share-search[timm]'``) and makes one stage per feature level: the modules from one
returned feature to the next. Only feature extractors that run their modules in order
(timm's ``FeatureListNet``: ResNets, ConvNeXts, RegNets, ...) can be cut so; others are
refused by name.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Sequence

from torch import nn

from ..errors import SpecError
from .backbones import _as_image, _Unsqueeze

OUTPUT_STRIDES = {32: (False, False, False), 16: (False, False, True), 8: (False, True, True)}  # dilate layer2, 3, 4?


def _torchvision_resnet(depth: int, input_shape: Sequence[int], output_stride: int) -> list[nn.Module]:
    import torchvision

    if output_stride not in OUTPUT_STRIDES:
        raise SpecError("backbone.options.output_stride", f"must be one of {', '.join(map(str, OUTPUT_STRIDES))}, got {output_stride!r}")
    c, _, _ = _as_image(input_shape)
    net = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    dilation = 1
    for name, dilate in zip(("layer2", "layer3", "layer4"), OUTPUT_STRIDES[output_stride]):
        if dilate:
            dilation = _dilate(getattr(net, name), dilation)
    if c != 3:
        net.conv1 = nn.Conv2d(c, 64, kernel_size=7, stride=2, padding=3, bias=False)
    stem = OrderedDict(grey=_Unsqueeze(), conv1=net.conv1, bn1=net.bn1, relu=net.relu, maxpool=net.maxpool, layer1=net.layer1)
    return [nn.Sequential(stem)] + [nn.Sequential(OrderedDict({name: getattr(net, name)})) for name in ("layer2", "layer3", "layer4")]


def _dilate(layer: nn.Sequential, previous: int) -> int:
    """Make a strided ResNet layer keep its input's resolution and dilate its 3x3 convolutions
    instead, as torchvision's ``replace_stride_with_dilation`` does (which its BasicBlock,
    ResNet-18's and -34's block, refuses): the first block at the dilation before, the rest at
    twice it. Returns the new dilation."""
    dilation = previous * 2
    for j, block in enumerate(layer):
        d = previous if j == 0 else dilation
        for conv in block.modules():
            if isinstance(conv, nn.Conv2d):
                conv.stride = (1, 1)
                if conv.kernel_size == (3, 3):
                    conv.dilation, conv.padding = (d, d), (d, d)
    return dilation


def resnet18(input_shape: Sequence[int], output_stride: int = 32) -> list[nn.Module]:
    """torchvision's ResNet-18 as four stages (64, 128, 256, 512 channels)."""
    return _torchvision_resnet(18, input_shape, output_stride)


def resnet34(input_shape: Sequence[int], output_stride: int = 32) -> list[nn.Module]:
    """torchvision's ResNet-34 as four stages (64, 128, 256, 512 channels)."""
    return _torchvision_resnet(34, input_shape, output_stride)


def resnet50(input_shape: Sequence[int], output_stride: int = 32) -> list[nn.Module]:
    """torchvision's ResNet-50 as four stages (256, 512, 1024, 2048 channels)."""
    return _torchvision_resnet(50, input_shape, output_stride)


def timm(input_shape: Sequence[int], model: str, **options: Any) -> list[nn.Module]:
    """``timm.create_model(model, features_only=True, in_chans=C, **options)``, one stage per
    feature level (``out_indices`` picks the levels); ``pretrained`` is refused: give a local
    file as ``backbone.weights``."""
    try:
        import timm as timm_package
    except ImportError:
        raise SpecError("backbone.name", "the timm backbone needs the timm package: pip install 'share-search[timm]'") from None
    if options.get("pretrained"):
        raise SpecError("backbone.options.pretrained", "share-search never downloads weights; give a local file as backbone.weights")
    options.pop("pretrained", None)
    c, _, _ = _as_image(input_shape)
    if not timm_package.is_model(str(model).split(".")[0]):  # "resnet18.a1_in1k": a model and a weights tag
        raise SpecError("backbone.options.model", f"timm has no model {model!r} (timm.list_models() lists them)")
    net = timm_package.create_model(model, pretrained=False, features_only=True, in_chans=c, **options)
    returned = getattr(net, "return_layers", None)
    if not isinstance(net, nn.ModuleDict) or not returned:
        raise SpecError(
            "backbone.options.model",
            f"timm gives {model!r}'s features through a {type(net).__name__}, which cannot be cut into stages; "
            "use a model whose features_only extractor is a FeatureListNet (ResNets, ConvNeXts, RegNets, ...)",
        )
    stages, current = [], OrderedDict()
    for name, module in net.items():
        current[name] = module
        if name in returned:
            stages.append(nn.Sequential(current))
            current = OrderedDict()
    stages[0] = nn.Sequential(OrderedDict(grey=_Unsqueeze(), **stages[0]._modules))
    return stages
