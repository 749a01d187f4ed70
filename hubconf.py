"""torch.hub entry points, as RVM's own: ``torch.hub.load(<this repo>, "mobilenetv3", source="local")``."""

dependencies = ["torch", "torchvision"]


def mobilenetv3(pretrained: bool = True, refiner: str = "deep_guided_filter", checkpoint=None, device="cpu"):
    """RVM MobileNetV3 in eval mode, with the provisioned official weights (or ``checkpoint``)."""
    from rvm_engine.model import MattingNetwork
    from rvm_engine.weights import load_model

    if not pretrained:
        return MattingNetwork("mobilenetv3", refiner).eval()
    return load_model("mobilenetv3", checkpoint, refiner, device)


def resnet50(pretrained: bool = True, refiner: str = "deep_guided_filter", checkpoint=None, device="cpu"):
    """RVM ResNet-50 in eval mode; needs the official ``rvm_resnet50.pth`` (``checkpoint`` or its env variable)."""
    from rvm_engine.model import MattingNetwork
    from rvm_engine.weights import load_model

    if not pretrained:
        return MattingNetwork("resnet50", refiner).eval()
    return load_model("resnet50", checkpoint, refiner, device)


def converter():
    """The seed's ``convert_video`` function."""
    from rvm_engine.convert_video import convert_video

    return convert_video
