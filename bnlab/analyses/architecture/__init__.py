"""Architecture accounting (seed 003 problem 3): per-layer activations, weights and MACs of real modules.

    df = layer_table(model, (3, 224, 224)); totals(df)
    vgg19_seed_table(); receptive_field_probe(3, 5); inception_summary((256, 32, 32))
    receptive_background(); inception_background()   # the section's background: text + table, numbers computed
    build_section([("lenet5", (1, 28, 28))], out_dir)   # -> out_dir/section.json
"""

from bnlab.models.accounting import layer_table, totals

from .background import inception_background, receptive_background
from .inception import Inception, inception_summary, inception_table, naive_inception, reduction_inception
from .receptive import (
    receptive_field_composed,
    receptive_field_formula,
    receptive_field_probe,
    receptive_field_table,
)
from .reference import (
    ALEXNET_INPUT,
    CIFAR_INPUT,
    VGG_INPUT,
    alexnet_paper,
    torchvision_alexnet,
    torchvision_vgg19,
    vgg19,
    vgg_a_cifar,
)
from .section import build_section, section_data
from .vgg_table import vgg19_seed_table

__all__ = [
    "ALEXNET_INPUT",
    "CIFAR_INPUT",
    "Inception",
    "VGG_INPUT",
    "alexnet_paper",
    "build_section",
    "inception_background",
    "inception_summary",
    "inception_table",
    "layer_table",
    "naive_inception",
    "receptive_background",
    "receptive_field_composed",
    "receptive_field_formula",
    "receptive_field_probe",
    "receptive_field_table",
    "reduction_inception",
    "section_data",
    "torchvision_alexnet",
    "torchvision_vgg19",
    "totals",
    "vgg19",
    "vgg19_seed_table",
    "vgg_a_cifar",
]
