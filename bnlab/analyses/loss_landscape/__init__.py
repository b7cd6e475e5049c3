"""Loss landscape studies: Santurkar et al. probes (bnlab.train.probes, taken during training) and the course's
band across learning rates (band.py).

    from bnlab.analyses.loss_landscape import probe_step, summarise_probe, last_layer_grad
    rows = probe_step(model, xb, yb, lr, etas=(0.5, 1, 2, 4))      # after backward, before optimizer.step()
    band = course_band({("none", 1e-3): steps_df, ...})              # max/min loss across lrs per step

Figures live in bnlab.figures.landscape (imported on demand: it loads matplotlib), with their display smoothing.
"""

from bnlab.train.probes import (METHODS, PROBE_COLUMNS, check_probe_method, has_active_dropout, last_layer_grad,
                                last_linear, probe_step, summarise_probe)

from .band import (beta_smoothness, course_band, grad_predictiveness_band, loss_band, probe_band, run_ends,
                   stack_runs)

__all__ = [
    "METHODS",
    "PROBE_COLUMNS",
    "beta_smoothness",
    "check_probe_method",
    "course_band",
    "grad_predictiveness_band",
    "has_active_dropout",
    "last_layer_grad",
    "last_linear",
    "loss_band",
    "probe_band",
    "probe_step",
    "run_ends",
    "stack_runs",
    "summarise_probe",
]
