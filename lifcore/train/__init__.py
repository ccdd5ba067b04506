"""Training runs of the coding model: `config` (TrainConfig, deck_config), `build` (patches,
C_x, encoder, method from a config), `schedule` (learning rates, jitter, centring), `loop`
(train), `record` (the history under the deck's tags), `store` (the run cache)."""
from .config import DECK_REFERENCE_STEPS, TrainConfig, coerce_fields, deck_config
from .loop import DivergenceError, Run, train
