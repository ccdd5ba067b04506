"""From a `TrainConfig` to the objects a run is made of: patches, C_x, encoder, method."""
from __future__ import annotations

from pathlib import Path

import torch

from ..coding import SoftLIFEncoder, SoftplusEncoder
from ..coding.data import PatchDataset, natural_patches
from ..coding.encoder import Encoder
from ..coding.info import StreamingCovariance
from ..constraints import ConstraintMethod, make
from .config import TrainConfig

def dataset_for(config: TrainConfig) -> PatchDataset:
    images = config.images
    if len(images) == 1 and Path(images[0]).expanduser().is_dir():
        images = str(Path(images[0]).expanduser())
    return natural_patches(config.patch_size, n_train=config.n_patches, n_test=max(config.n_patches // 10, 1000),
                           seed=config.seed, images=list(images) if isinstance(images, tuple) and images else (images or None),
                           centering=config.centering, mask=config.mask)


def estimate_input_covariance(data: PatchDataset, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """C_x from `cov_batches` batches, with the streaming estimator (float64)."""
    stream = StreamingCovariance(data.dim)
    for _ in range(config.cov_batches):
        stream.update(data.batch(config.batch_size, generator))
    return stream.covariance()


def build_encoder(config: TrainConfig, device, input_covariance: torch.Tensor | None = None) -> Encoder:
    """The encoder of `config`; with ``filter_init="pca"`` its filters start as the top principal
    components of `input_covariance` (each at the norm the random filter had, sign fixed so
    that its largest entry is positive)."""
    encoder = _new_encoder(config, device)
    if config.filter_init == "pca":
        if input_covariance is None:
            raise ValueError('filter_init="pca" needs the input covariance')
        if config.n_neurons > config.dim:
            raise ValueError(f'filter_init="pca" needs n_neurons <= dim; got n_neurons={config.n_neurons}, dim={config.dim}')
        _, vectors = torch.linalg.eigh(input_covariance.double())
        components = vectors.flip(-1)[:, :config.n_neurons].t()  # [N, D], the largest variance first
        sign = torch.sign(components.gather(1, components.abs().argmax(1, keepdim=True)))
        with torch.no_grad():
            norms = encoder.weights.norm(dim=1, keepdim=True)
            encoder.weights.copy_((components * sign * norms.double().cpu()).to(encoder.weights))
    return encoder


def _new_encoder(config: TrainConfig, device) -> Encoder:
    common = dict(dim=config.dim, n_neurons=config.n_neurons, input_noise=config.input_noise,
                  output_noise=config.output_noise, gain_at=config.gain_at, renormalize=config.renormalize,
                  device=device, dtype=config.torch_dtype)
    if config.encoder == "softplus":
        return SoftplusEncoder(softplus_beta=config.softplus_beta, **common)
    return SoftLIFEncoder(alpha=config.alpha, v_th=config.v_th, sharpness=config.sharpness,
                          weight_scale=config.weight_scale, initial_rate=config.initial_rate,
                          learn_threshold=config.learn_threshold, **common)


def parameter_sets(config: TrainConfig, encoder: Encoder) -> tuple[list, list | None]:
    """Which parameters the objective and the rate step move, by method:

    * two_losses: the filters (or everything, ``info_moves="all"``), and the nonlinearity (the
      deck's W versus logA, logB);
    * alternating: everything, and everything (``fr_params="all"``, the toy) or the nonlinearity;
    * gamma: the filters and the threshold (the gain is the homeostatic one);
    * lagrange, penalty: everything, in one step.
    """
    groups = encoder.parameter_groups()
    everything = groups["filters"] + groups["nonlinearity"]
    if config.method == "two_losses":
        return (groups["filters"] if config.info_moves == "filters" else everything), groups["nonlinearity"]
    if config.method == "alternating":
        if config.fr_params == "nonlinearity":
            return groups["filters"], groups["nonlinearity"]
        return everything, everything
    if config.method == "gamma":
        return [p for p in everything if p is not getattr(encoder, "log_gain", None)], None
    return everything, None


def build_method(config: TrainConfig, encoder: Encoder) -> ConstraintMethod:
    info_params, rate_params = parameter_sets(config, encoder)
    common = dict(r0=config.r0, lr=config.lr, fr_lr=config.fr_lr, rate_weight=config.rate_weight,
                  optimizer=config.optimizer, fr_scope=config.fr_scope, clip_grad_norm=config.clip_grad_norm,
                  project=encoder.project_, n_neurons=config.n_neurons)
    options = {
        "lagrange": dict(rho=config.rho, multiplier_lr=config.multiplier_lr, multiplier_init=config.multiplier_init),
        "two_losses": dict(weights_see_rate_loss=config.weights_see_rate_loss, shared=config.info_moves == "all"),
        "alternating": {},
        "gamma": dict(set_gain=getattr(encoder, "set_homeostatic_gain", None), ema=config.homeostatic_ema),
        "penalty": {},
    }[config.method]
    return make(config.method, info_params, rate_params, **common, **options)
