"""An S4D sequence model recalling a token from at least ``min_lag`` steps back.

Gu, Gupta, Goel & Ré (2022), "On the Parameterization and Initialization of Diagonal State
Space Models" (S4D), on ``spectrax.data.delayed_recall``: a model whose memory is shorter than
``min_lag`` stays at chance (``1 / num_classes``). The SSM parameters (Λ, B, log dt) train in
their own optimizer group (``optim.ssm_learning_rate``, no weight decay). ``task.layer`` swaps
the S4D layers for S4, S5 or Hyena operators (Poli et al., 2023; ``max_len`` is the sequence
length; it wants ``optim.learning_rate=3e-3 loop.num_steps=600``; ``task.hyena_layout`` picks
the reference code's layout, the default, or the paper's). Hyena's implicit filters train in the
SSM group (``optim.ssm_learning_rate``, no weight decay), as in the reference code; its
projections, short filters and skips in the default group.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from spectrax.train import Config, LoopConfig, OptimConfig, SequenceClassificationTask

VARIANTS = ("default", "smoke")


@dataclasses.dataclass(frozen=True)
class DelayedRecallS4D:
    """Data and model (every field overridable as ``task.<name>``)."""

    num_train: int = dataclasses.field(default=1024, metadata={"min": 1})
    num_test: int = dataclasses.field(default=256, metadata={"min": 1})
    length: int = dataclasses.field(default=64, metadata={"min": 1})
    min_lag: int = dataclasses.field(default=32, metadata={"min": 1})
    num_classes: int = dataclasses.field(default=4, metadata={"min": 1})
    # jax.random.key takes a C long
    # 32 bits: jax.random.key drops the rest outside 64-bit mode (2**32 + 5 is seed 5's data)
    data_seed: int = dataclasses.field(default=0, metadata={"min": 0, "max": 2**32 - 1})
    d_model: int = dataclasses.field(default=32, metadata={"min": 1})
    n_layers: int = dataclasses.field(default=2, metadata={"min": 1})
    state_size: int = dataclasses.field(default=32, metadata={"min": 2})
    layer: str = dataclasses.field(
        default="s4d", metadata={"choices": ("s4", "s4d", "s5", "hyena")}
    )
    dropout: float = dataclasses.field(
        default=0.0, metadata={"min": 0.0, "max": 1.0, "max_open": True}
    )
    # Hyena's filter windows exp(-rate t), t in [0, 1] over the sequence (layer="hyena" only).
    # The reference code's rates (3.07 .. 15.35, sized for language modelling) damp a lag of
    # half the sequence by 0.2 .. 5e-4 at initialisation; recall from >= min_lag back wants
    # slower windows.
    hyena_decay_min: float = dataclasses.field(default=0.5, metadata={"min": 0.0, "min_open": True})
    hyena_decay_max: float = dataclasses.field(default=3.0, metadata={"min": 0.0, "min_open": True})
    # HyenaOperator's layout (layer="hyena" only): "reference" (the reference code's, a gate
    # before each of N - 1 long convolutions and one at the end; at order 2: gate, one long
    # convolution, gate), which learns on all 12 seeds measured, or "paper" (Definition 3.1, N
    # long convolutions each gated after), on 9 of 12 (see get_config).
    hyena_layout: str = dataclasses.field(
        default="reference", metadata={"choices": ("reference", "paper")}
    )

    # The diagonal layers' initialisation (layer="s4d" or "s5" only): "default" (S4D-LegS,
    # S5's HiPPO-N) or "ptd", perturb-then-diagonalise HiPPO-LegS (Yu, Mahoney & Erichson,
    # 2024; S4D(init="ptd"), S5(init="ptd")). Measured (default config, seed 0, 400 steps):
    # test error 0.0 for both, already at step 200 (the eigenvectors in ptd_legs's fixed gauge;
    # with LAPACK's, S4D-PTD was 0.0039 at step 200).
    ssm_init: str = dataclasses.field(default="default", metadata={"choices": ("default", "ptd")})

    def build(self) -> SequenceClassificationTask:
        from spectrax.data import delayed_recall
        from spectrax.models import SSMSequenceModel

        if self.ssm_init != "default" and self.layer not in ("s4d", "s5"):
            raise ValueError(
                f"`task.ssm_init`={self.ssm_init!r} applies to layer='s4d' or 's5'; got "
                f"layer={self.layer!r} (S4 starts from its HiPPO measure, Hyena has no state)."
            )
        n = self.num_train + self.num_test
        x, y = delayed_recall(
            jax.random.key(self.data_seed),
            n,
            self.length,
            min_lag=self.min_lag,
            num_classes=self.num_classes,
        )
        x, y = np.asarray(x), np.asarray(y)
        return SequenceClassificationTask(
            make_model=lambda key: SSMSequenceModel(
                x.shape[-1],
                self.num_classes,
                self.d_model,
                self.n_layers,
                layer=self.layer,
                state_size=self.state_size,
                pooling="last",
                dropout=self.dropout,
                max_len=self.length if self.layer == "hyena" else None,
                layer_kwargs=(
                    {
                        "decay_min": self.hyena_decay_min,
                        "decay_max": self.hyena_decay_max,
                        "layout": self.hyena_layout,
                    }
                    if self.layer == "hyena"
                    else {"init": "ptd"}
                    if self.ssm_init == "ptd"
                    else None
                ),
                key=key,
            ),
            train=(x[: self.num_train], y[: self.num_train]),
            test=(x[self.num_train :], y[self.num_train :]),
            needs_key=self.dropout > 0,
        )


def get_config(variant: str = "default") -> Config:
    if variant == "smoke":
        return Config(
            name="s4d_recall",
            task=DelayedRecallS4D(
                num_train=32, num_test=16, length=32, min_lag=8, d_model=8, n_layers=1, state_size=8
            ),
            optim=OptimConfig(learning_rate=3e-3, ssm_learning_rate=1e-3, warmup_steps=2),
            loop=LoopConfig(num_steps=6, batch_size=8, log_every=3),
        )
    # Measured (2-core CPU, 27 s of CPU time): test error 0.0 from step 200 on. Hyena
    # (task.layer=hyena optim.learning_rate=3e-3 loop.num_steps=600, the README's line), final
    # test error over seeds 0 .. 11 (config.seed):
    # - task.hyena_layout=reference (the default; the reference code's order-2 layout: gate,
    #   one long convolution, gate): 0.0 for all 12 seeds, 11 of them already at step 200
    #   (seed 11: 0.79 at step 200, 0.0 at 400).
    # - task.hyena_layout=paper (Definition 3.1: two long convolutions, each gated after): 0.0
    #   for seeds 0 .. 6, 8, 10 (from step 400 on), but 0.785, 0.785, 0.789 for 7, 9, 11, which
    #   never leave chance (0.75; train loss ln 4 = 1.39 throughout): 9 of 12. In 400 steps
    #   (earlier measurement): 0.0 for 8 seeds, 0.098 for seed 4 (still learning). Slower windows
    #   help some seeds but not others (600 steps, task.hyena_decay_max=1.5: seeds 7, 9 0.0,
    #   seed 4 0.25; decay 0.1 .. 1.0: seed 7 0.79); at 1e-2 it stays at chance.
    # Diagnosis (600 steps, seeds 0 .. 11): nothing at initialisation tells the paper layout's
    # failing seeds apart (loss, gradient norms, filter norms, long-range sensitivity alike);
    # the layout is what matters. With HyenaOperator(order=1) (one convolution, then a gate;
    # not a config field) 11 of 12 reach 0.0 (seed 8 ends at 0.29).
    return Config(
        name="s4d_recall",
        task=DelayedRecallS4D(),
        max_test_error=0.05,
        optim=OptimConfig(
            learning_rate=1e-2, ssm_learning_rate=3e-3, warmup_steps=30, weight_decay=0.05
        ),
        loop=LoopConfig(num_steps=400, batch_size=32, log_every=25, eval_every=200),
    )
