"""Growing batch against decaying lr: training loss by data seen and by update, and the schedules."""

from __future__ import annotations

import pandas as pd

from bnlab.figures.style import FULL_WIDTH_IN, apply_style, palette, plt, wrap


def plot_batch_growth(steps: pd.DataFrame, binned: pd.DataFrame, table: pd.DataFrame, out_path: str, *, title: str,
                      dataset_note: str) -> None:
    """2x2: loss vs epochs, loss vs updates (log), batch size vs epochs, lr vs epochs.

    binned: the loss per bin of epochs (bnlab.analyses.batch_growth.loss_by_epoch).

    One colour per policy, one line per seed; a diverged run ends in an x.
    """
    apply_style()
    policies = list(dict.fromkeys(table.policy))
    colours = dict(zip(policies, palette(len(policies))))
    fig, axes = plt.subplots(2, 2, figsize=(FULL_WIDTH_IN, 5.6), layout="constrained")
    (ax_loss, ax_updates), (ax_batch, ax_lr) = axes
    diverged = set(zip(table.policy[table.status != "ok"], table.seed[table.status != "ok"]))
    for (policy, seed), run in steps.groupby(["policy", "seed"], sort=False):
        c = colours[policy]
        label = policy if seed == steps[steps.policy == policy].seed.min() else None
        b = binned[(binned.policy == policy) & (binned.seed == seed)]
        ax_loss.plot(b.epoch, b.loss, color=c, label=label)
        # Updates on a log axis: the growing batch's few late steps would vanish on a linear one.
        smooth = run.loss.rolling(max(1, len(run) // 100), min_periods=1).mean()
        ax_updates.plot(run.step, smooth, color=c, lw=1)
        ax_batch.step(run.epoch, run.batch_size, where="post", color=c)
        ax_lr.step(run.epoch, run.lr, where="post", color=c)
        if (policy, seed) in diverged and len(run):
            ax_loss.plot(run.epoch.iloc[-1], b.loss.iloc[-1] if len(b) else 0, "x", color=c, ms=8, mew=2)
            ax_updates.plot(run.step.iloc[-1], smooth.iloc[-1], "x", color=c, ms=8, mew=2)
    ax_loss.set(xlabel="epochs (data seen)", ylabel="training loss",
                title="Training loss by data seen (sample-weighted, 1/4 epoch bins)")
    ax_updates.set(xscale="log", xlabel="optimizer updates (log)", ylabel="training loss",
                   title="Training loss by update (running mean)")
    ax_batch.set(yscale="log", xlabel="epochs", ylabel="batch size", title="Batch size")
    ax_batch.set_yscale("log", base=2)
    ax_lr.set(yscale="log", xlabel="epochs", ylabel="learning rate", title="Learning rate")
    for ax in axes.flat:
        ax.title.set_fontsize(8.5)
    fig.legend(*ax_loss.get_legend_handles_labels(), loc="outside lower center", ncol=min(3, len(policies)),
               frameon=False)
    fig.suptitle(wrap(f"{title} {dataset_note}: growing batch vs decaying lr at equal data (x = diverged)", 100),
                 fontsize=9)
    fig.savefig(out_path)
    plt.close(fig)
