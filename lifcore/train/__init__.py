"""Training runs of the coding model: `config` (TrainConfig, deck_config), `build` (patches,
C_x, encoder, method from a config), `schedule` (learning rates, jitter, centring), `loop`
(train), `record` (the history under the deck's tags), `events` (the same as TensorBoard event files),
`store` (the run cache and its lock), `sweep` (many runs as submitit jobs, on this machine or SLURM),
`evaluate` (a finished run scored on held-out and training patches)."""
from .config import DECK_REFERENCE_STEPS, RECIPE, TrainConfig, coerce_fields, deck_config, recipe_config
from .loop import DivergenceError, Run, train
from . import evaluate
from .store import RunLockedError
