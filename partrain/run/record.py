"""config.json: what a run was, recorded at its start.

Every resolved setting, the optimizer, the model's layers, the data, the derived step
counts, the fingerprints a checkpoint is checked against, the machine and package
versions, and the command line that started it. ``extra`` adds what the caller knows
(the CLI records how it named the model and data, so ``--resume`` can rebuild them).
"""

from __future__ import annotations

import sys

from ..machine import machine_info
from .architecture import describe


def config_record(trainer, fingerprints, extra=None):
    m, d, s = trainer.model, trainer.data, trainer.settings
    return dict(
        settings=s.as_dict(), optimizer=trainer.optimizer.hyperparameters(),
        model=dict(name=m.name, num_params=m.num_params, input_shape=m.input_shape,
                   num_classes=m.num_classes, dtype=str(m.dtype),
                   layers=m.summary().splitlines(),
                   # None for a model with classes of its own: only model.pkl has it
                   architecture=describe(m)),
        data=dict(name=d.name, class_names=d.class_names, num_classes=d.num_classes,
                  **{f"n_{k}": len(v[0]) for k, v in d.splits().items()}),
        derived=dict(total_steps=trainer.total_steps,
                     steps_per_epoch=trainer.sampler.steps_per_epoch),
        fingerprints=fingerprints, machine=machine_info(), command=sys.argv,
        **(extra or {}))
