"""The seed's Table 1 (VGG19 memory and weights, no biases) filled from the VGG19 module's accounting."""

from __future__ import annotations

import pandas as pd

from bnlab.models.accounting import layer_table

from .fmt import short
from .reference import VGG_INPUT, vgg19

SEED_COLUMNS = ["layer", "activations", "activations_short", "activations_expr", "weights", "weights_expr"]


def _label(row: pd.Series) -> str:
    if row["type"] == "Input":
        return "Input"
    if row["type"] == "Conv2d":
        return f"CONV{int(row['kernel'])}-{row['output_shape'][0]}"
    if row["type"] == "MaxPool2d":
        return f"POOL{int(row['kernel'])}"
    if row["type"] == "Linear":
        return f"FC {row['output_shape'][0]}"
    return str(row["type"])


def vgg19_seed_table() -> pd.DataFrame:
    """Rows Input, CONV3-64, CONV3-64, POOL2, ..., FC 4096, FC 4096, FC 1000, TOTAL.

    Columns: layer, activations (exact int, output numel per image),
    activations_short (the seed's '3.2M' form), activations_expr ('224*224*64'),
    weights (without biases), weights_expr ('(3*3*3)*64'). Computed from
    reference.vgg19(bias=False) on 224x224x3; TOTAL sums every row, the input included.
    """
    model = vgg19(bias=False)
    kernels = {name: (m.kernel_size[0] if isinstance(m.kernel_size, tuple) else m.kernel_size)
               for name, m in model.named_modules() if hasattr(m, "kernel_size")}
    df = layer_table(model, VGG_INPUT)
    df["kernel"] = df["name"].map(kernels)
    out = pd.DataFrame({
        "layer": df.apply(_label, axis=1),
        "activations": df["activations"].astype(int),
        "activations_expr": df["activations_expr"],
        "weights": df["weights"].astype(int),
        "weights_expr": df["calc"],
    })
    total = {"layer": "TOTAL", "activations": int(out["activations"].sum()),
             "activations_expr": "sum", "weights": int(out["weights"].sum()), "weights_expr": "sum"}
    out = pd.concat([out, pd.DataFrame([total])], ignore_index=True)
    out["activations_short"] = out["activations"].map(short)
    return out[SEED_COLUMNS]
