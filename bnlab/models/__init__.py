"""Model zoo of the studies: a registry of builders with shared BN, activation, dropout and init rules.

    model = create_model("mlp", input_shape=(1, 28, 28), num_classes=10, bn="hidden", init="xavier")
"""

from .init import DEFAULT_SCALES, INIT_SCHEMES, INITIALIZERS, init_weights
from .layers import ACTIVATION_LAYERS, ACTIVATIONS, BN_PLACEMENTS, NORM_FACTORIES, LayerSpec
from .registry import accepts_widths, create_model, list_models, register_model
from .summary import bn_layers, count_parameters

# Importing the model modules registers their builders.
from . import convnets, lenet, minigooglenet, mlp, resnet, vgg  # noqa: E402,F401  isort: skip

__all__ = [
    "ACTIVATIONS",
    "ACTIVATION_LAYERS",
    "BN_PLACEMENTS",
    "DEFAULT_SCALES",
    "INITIALIZERS",
    "INIT_SCHEMES",
    "LayerSpec",
    "NORM_FACTORIES",
    "accepts_widths",
    "bn_layers",
    "count_parameters",
    "create_model",
    "init_weights",
    "list_models",
    "register_model",
]
