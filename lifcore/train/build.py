"""From a `TrainConfig` to the objects a run is made of: patches, C_x, encoder, method."""
from __future__ import annotations

import math

import torch

from ..coding import SoftLIFEncoder, SoftplusEncoder, dog, mosaics
from ..coding.data import PatchDataset, natural_patches
from ..coding.encoder import Encoder
from ..coding.info import StreamingCovariance
from ..constraints import ConstraintMethod, make
from ..constraints.precondition import InputPreconditioner
from .config import TrainConfig

def dataset_for(config: TrainConfig) -> PatchDataset:
    return natural_patches(config.patch_size, n_train=config.n_patches, n_test=max(config.n_patches // 10, 1000),
                           seed=config.seed, images=config.images, centering=config.centering, mask=config.mask,
                           image_scale=config.image_scale, image_noise=config.image_noise)


def estimate_input_covariance(data: PatchDataset, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """C_x from `cov_batches` batches, with the streaming estimator (float64)."""
    stream = StreamingCovariance(data.dim)
    for _ in range(config.cov_batches):
        stream.update(data.batch(config.batch_size, generator))
    return stream.covariance()


def whitening_dog(input_covariance: torch.Tensor, n_neurons: int, patch_size: int) -> dog.DoGFit:
    """The DoG of the linear optimum without noise for `n_neurons` channels.

    Whitening within the top-N principal subspace of C_x, ``F = U_N Lambda_N^{-1/2} U_N^T``: the
    information of a linear Gaussian channel does not change under a rotation of its outputs, and
    this rotation makes each row a localized filter (Atick and Redlich's whitening filter, for as
    many channels as neurons). Its row for an achromatic point at the patch's centre is fitted by a
    difference of Gaussians (`lifcore.coding.dog.fit`): one centre width, one surround, one colour.
    """
    channels, dim = 3, input_covariance.shape[0]
    values, vectors = torch.linalg.eigh(input_covariance.double().cpu())
    top = vectors[:, -n_neurons:]
    whitening = top @ torch.diag(values[-n_neurons:].clamp_min(1e-12).rsqrt()) @ top.t()
    probe = torch.zeros(patch_size, patch_size, channels, dtype=torch.float64)
    probe[patch_size // 2, patch_size // 2] = 1 / math.sqrt(channels)
    return dog.fit((whitening @ probe.reshape(dim))[None], patch_size, channels)


def centre_surround_filters(input_covariance: torch.Tensor, n_neurons: int, patch_size: int, placement: str,
                            seed: int = 0, width: float = 1.0) -> torch.Tensor:
    """Filters in closed form ``[N, D]`` (unit norm, float64): the `whitening_dog` (its widths times
    `width`) drawn at N centres,
    the first half of the neurons ON, the rest OFF (sign reversed: the rectifying nonlinearity's two
    polarities). `placement` "lattice": the centres of two interleaved hexagonal lattices inside the
    circular mask (`lifcore.coding.mosaics.hexagonal_lattice`), ON and OFF mosaics; "scattered":
    uniform random centres in the same disc (from `seed`), the same fields without a mosaic."""
    shape = whitening_dog(input_covariance, n_neurons, patch_size)
    n_on = n_neurons // 2
    if placement == "lattice":
        centres = torch.cat((mosaics.hexagonal_lattice(n_on, patch_size),
                             mosaics.hexagonal_lattice(n_neurons - n_on, patch_size, (0.5, 0.5 / math.sqrt(3)))))
    elif placement == "scattered":
        g = torch.Generator().manual_seed(seed)
        radius = (patch_size / 2 - 0.5) * torch.rand(n_neurons, generator=g, dtype=torch.float64).sqrt()
        angle = 2 * math.pi * torch.rand(n_neurons, generator=g, dtype=torch.float64)
        centres = (patch_size - 1) / 2 + torch.stack((radius * torch.sin(angle), radius * torch.cos(angle)), 1)
    else:
        raise ValueError(f"placement={placement!r} is unknown; allowed: 'lattice', 'scattered'")
    sign = torch.cat((torch.ones(n_on), -torch.ones(n_neurons - n_on))).double()[:, None]
    channels = shape.centre_amplitude.shape[1]
    w = dog.dog_fields(centres, width * shape.centre_widths.expand(n_neurons, channels),
                       width * shape.surround_widths.expand(n_neurons, channels), sign * shape.centre_amplitude,
                       sign * shape.surround_amplitude, patch_size)
    return w / w.norm(dim=1, keepdim=True)


def build_encoder(config: TrainConfig, device, input_covariance: torch.Tensor | None = None) -> Encoder:
    """The encoder of `config`; with ``filter_init="pca"`` its filters start as the top principal
    components of `input_covariance` (each at the norm the random filter had, sign fixed so
    that its largest entry is positive), with ``"lattice"`` or ``"scattered"`` as
    `centre_surround_filters` (each at the norm the random filter had)."""
    encoder = _new_encoder(config, device)
    if config.filter_init in ("lattice", "scattered"):
        if input_covariance is None:
            raise ValueError(f"filter_init={config.filter_init!r} needs the input covariance")
        if config.n_neurons > config.dim:
            raise ValueError(f"filter_init={config.filter_init!r} needs n_neurons <= dim; got "
                             f"n_neurons={config.n_neurons}, dim={config.dim}")
        fields = centre_surround_filters(input_covariance, config.n_neurons, config.patch_size, config.filter_init,
                                         config.seed, config.filter_init_width)
        with torch.no_grad():
            norms = encoder.weights.norm(dim=1, keepdim=True)
            encoder.weights.copy_((fields * norms.double().cpu()).to(encoder.weights))
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
        return SoftplusEncoder(softplus_beta=config.softplus_beta, filter_shape=config.filter_shape,
                               patch_size=config.patch_size, **common)
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


def build_method(config: TrainConfig, encoder: Encoder, input_covariance: torch.Tensor | None = None) -> ConstraintMethod:
    """The constraint method of `config` over `encoder`'s parameters; ``precondition="input"`` needs
    `input_covariance` (the filters' step preconditioned by it, `lifcore.constraints.precondition`)."""
    info_params, rate_params = parameter_sets(config, encoder)
    preconditioners = []
    if config.precondition == "input":
        if input_covariance is None:
            raise ValueError("precondition='input' needs the input covariance")
        preconditioners.append(InputPreconditioner(encoder.weights, input_covariance, config.input_noise,
                                                   tangent=config.renormalize))
    common = dict(r0=config.r0, lr=config.lr, fr_lr=config.fr_lr, rate_weight=config.rate_weight,
                  optimizer=config.optimizer, fr_scope=config.fr_scope, clip_grad_norm=config.clip_grad_norm,
                  project=encoder.project_, n_neurons=config.n_neurons,
                  lr_factors={p: config.nonlinearity_lr / config.lr for p in encoder.parameter_groups()["nonlinearity"]}
                  if config.nonlinearity_lr is not None else None, preconditioners=preconditioners)
    options = {
        "lagrange": dict(rho=config.rho, multiplier_lr=config.multiplier_lr, multiplier_init=config.multiplier_init),
        "two_losses": dict(weights_see_rate_loss=config.weights_see_rate_loss, shared=config.info_moves == "all"),
        "alternating": {},
        "gamma": dict(set_gain=getattr(encoder, "set_homeostatic_gain", None), ema=config.homeostatic_ema),
        "penalty": {},
    }[config.method]
    return make(config.method, info_params, rate_params, **common, **options)
