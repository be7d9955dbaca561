"""Typed configuration of SIDHCNN training, and the paper's ablation / sweep presets.

:class:`TrainConfig` holds every knob of Algorithm 1 (SPEC §2): the constraint
weights α, β, γ of eq. (5), the code length l, the optimiser, the loss
normalisation and the runtime settings. It is a frozen dataclass, saved in every
checkpoint (:meth:`TrainConfig.to_dict`) and read back from TOML or JSON files
(:meth:`TrainConfig.from_file`).

The presets reproduce the paper's experiments:

- :data:`PRESETS` — the four configurations of Table IV (``irsc``, ``iasc``,
  ``bqc``, ``fdc``) and the final default (``full``: α = 1, β = 0.1, γ = 1).
- :func:`ablation_configs` — Table IV for one code length.
- :data:`TABLE_SWEEPS` / :func:`sweep_configs` — the α, β, γ sweeps of Tables V–VII,
  with the other two weights fixed as in the paper.

Why the defaults for the unspecified parts (learning rate, normalisation,
schedule) are what they are is recorded in ``docs/training.md`` (measured on the
fake data of :mod:`hashsearch.training.fake`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hashsearch._system import available_cpus
from hashsearch._validate import check_int

__all__ = [
    "ModelConfig",
    "TrainConfig",
    "PRESETS",
    "TABLE_SWEEPS",
    "ablation_configs",
    "sweep_configs",
    "default_threads",
]

Normalization = Literal["pairs", "per_term", "none"]
Schedule = Literal["constant", "cosine", "step"]
Padding = Literal["valid", "same", "auto"]
FeatureInit = Literal["forward", "random"]
PairWeighting = Literal["none", "balanced", "auto"]
Precision = Literal["auto", "fp32", "bf16"]


def default_threads() -> int:
    """CPU threads a training run uses by default: the cores this process may run on."""
    return available_cpus()


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> None:
    check_int(value, name, minimum)


def _check_nonneg(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """Input geometry of the two networks (Tables II and III by default).

    Attributes:
        pan_bands: channels of a PAN patch (1 for a panchromatic sensor).
        pan_size: side in pixels of a (square) PAN patch; 256 for DSRSID.
        ms_bands: channels of an MS patch; 4 for GF-1 (B, G, R, NIR).
        ms_size: side in pixels of an MS patch; 64 for DSRSID.
        padding: "valid" is the paper's (no padding anywhere; PAN patches need a side
            >= 241 and MS patches >= 57); "same" pads convolutions by k // 2 and
            poolings by (k - 1) // 2 so that small patches (e.g. EuroSAT's 64 / 16, or
            GF-2-like 32 / 8) still fit: same layers, filters and strides, except a
            pooling that a 1×1 map cannot take, which is left out (recorded in the
            checkpoint as the network's ``dropped_pools``). "auto": "valid" when both
            patches fit it, else "same"; the trainer records the choice in its config
            (:func:`hashsearch.training.models.resolve_padding`).
    """

    pan_bands: int = 1
    pan_size: int = 256
    ms_bands: int = 4
    ms_size: int = 64
    padding: Padding = "valid"

    def __post_init__(self) -> None:
        for name in ("pan_bands", "pan_size", "ms_bands", "ms_size"):
            _check_positive_int(name, getattr(self, name))
        if self.padding not in ("valid", "same", "auto"):
            raise ValueError(f"padding must be 'valid', 'same' or 'auto', got {self.padding!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one SIDHCNN (or DCMH) training run.

    The loss weights are the fields marked ``metadata={"loss_weight": True}``; each
    loss term (:mod:`hashsearch.training.losses`) names the one that scales it. A new
    term adds its weight here, in the same way.

    Attributes:
        alpha: weight α of the intra-source term IASC.
        beta: weight β of the quantisation term BQC.
        gamma: weight γ of the bit-balance term FDC.
        bits: code length l (a positive multiple of 8; the paper uses 8..32).
        epochs: T, passes of Algorithm 1 (30 in the paper).
        batch_size: mini-batch size V_P = V_M (128 in the paper).
        lr: SGD learning rate (see ``docs/training.md`` for how it was chosen).
        momentum: SGD momentum.
        weight_decay: L2 weight decay of SGD.
        schedule: learning-rate schedule over epochs: "constant", "cosine" (to
            ``lr * lr_min_factor`` at the last epoch) or "step" (× 0.1 at 2/3 of the epochs).
        lr_min_factor: final learning-rate factor of the cosine schedule.
        normalization: how the summed loss of a mini-batch is scaled (see
            :class:`hashsearch.training.losses.SIDHCNNLoss`): "pairs" divides the whole
            batch loss by batch × V (the pairs it sums over; keeps the paper's
            meaning of α, β, γ), "per_term" divides every term by its own element
            count, "none" keeps the raw sums of eq. (5).
        pair_weighting: weights of the pairs in the pairwise terms (IRSC, IASC): "none"
            (every pair weighs 1: eq. 5 as printed); "balanced" (HashNet's weighted
            maximum likelihood: in each batch × V block, similar pairs weigh T / (2·|S_1|)
            and dissimilar ones T / (2·|S_0|), so each half carries half of the loss;
            :func:`hashsearch.training.pairwise.pair_weights`); "auto": "balanced" when
            the training set's task is "instance" (a label is a pair id: one similar
            pair per row among V, where unweighted training collapses to Ω ≈ 0), else
            "none". The trainer records the choice in its config (measured in
            ``docs/results.md``).
        grad_clip: clip the gradient norm of each net at this value (None: no clipping).
        feature_init: how the stored F^P, F^M start: "forward" (one inference pass
            of the initial networks over the training set) or "random" (N(0, 1), as DCMH).
        calibrate: data-dependent init of every layer (zero-mean, unit-variance
            pre-activations and initial features; see ``DHCNN.calibrate``).
        calibration_samples: training samples used by the calibration.
        seed: seed of the initial weights, the mini-batch order and everything else.
        threads: torch CPU threads (None: every core this process may use).
        device: "cpu", "cuda", "cuda:N" or "auto" (CUDA when available).
        channels_last: NHWC memory format for the networks (None: on CPU only, where it
            is measured faster — see ``docs/training.md``).
        micro_batch: split each mini-batch into chunks of this many images for the
            network's forward/backward (identical gradients). On CPU it keeps every
            activation below glibc's 32 MiB mmap threshold, above which each step pays
            fresh page faults (measured: PAN 373 -> 455 training images/s at 32).
            "auto": per network, the most images whose largest activation fits
            32 MiB (PAN 256×256: 37; MS 64×64: 145, i.e. no split at 128). None: no
            splitting.
            Only used on CPU.
        precision: arithmetic of the networks' forward passes in training: "fp32";
            "bf16" (autocast: convolutions and linear layers in bfloat16; weights,
            gradients, the loss and the stored F^P, F^M stay float32); "auto": bf16 where
            the device computes it natively (CPU flags avx512_bf16 / amx_bf16, or a CUDA
            device with bf16), else fp32 (:mod:`hashsearch.training.precision`; speed
            and MAP measured in ``docs/training.md``). A run may resume in another precision.
        num_workers: DataLoader worker processes (0: load in the training process).
        stats_samples: training samples used to estimate the per-band input mean/std.
        model: input geometry of the networks.
        method: "sidhcnn" (eq. 5) or "dcmh" (the baseline's objective; α is ignored).
    """

    alpha: float = field(default=1.0, metadata={"loss_weight": True})
    beta: float = field(default=0.1, metadata={"loss_weight": True})
    gamma: float = field(default=1.0, metadata={"loss_weight": True})
    bits: int = 32
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 5e-4
    schedule: Schedule = "cosine"
    lr_min_factor: float = 0.01
    normalization: Normalization = "pairs"
    pair_weighting: PairWeighting = "auto"
    grad_clip: float | None = 1.0
    feature_init: FeatureInit = "forward"
    calibrate: bool = True
    calibration_samples: int = 256
    seed: int = 0
    threads: int | None = None
    device: str = "cpu"
    channels_last: bool | None = None
    micro_batch: int | Literal["auto"] | None = "auto"
    precision: Precision = "auto"
    num_workers: int = 0
    stats_samples: int = 2048
    model: ModelConfig = field(default_factory=ModelConfig)
    method: Literal["sidhcnn", "dcmh"] = "sidhcnn"

    def __post_init__(self) -> None:
        for name in (*self.weight_fields(), "weight_decay", "momentum"):
            _check_nonneg(name, getattr(self, name))
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        _check_positive_int("bits", self.bits, 8)
        if self.bits % 8:
            raise ValueError(f"bits must be a multiple of 8 (codes are packed into bytes), got {self.bits}")
        _check_positive_int("epochs", self.epochs, 0)
        _check_positive_int("batch_size", self.batch_size)
        _check_positive_int("seed", self.seed, 0)
        _check_positive_int("num_workers", self.num_workers, 0)
        _check_positive_int("stats_samples", self.stats_samples)
        _check_positive_int("calibration_samples", self.calibration_samples, 2)
        if self.threads is not None:
            _check_positive_int("threads", self.threads)
        if self.micro_batch is not None and self.micro_batch != "auto":
            _check_positive_int("micro_batch", self.micro_batch)
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip!r}")
        if self.schedule not in ("constant", "cosine", "step"):
            raise ValueError(f"schedule must be 'constant', 'cosine' or 'step', got {self.schedule!r}")
        if not 0 <= self.lr_min_factor <= 1:
            raise ValueError(f"lr_min_factor must be in [0, 1], got {self.lr_min_factor!r}")
        if self.normalization not in ("pairs", "per_term", "none"):
            raise ValueError(f"normalization must be 'pairs', 'per_term' or 'none', got {self.normalization!r}")
        if self.pair_weighting not in ("none", "balanced", "auto"):
            raise ValueError(f"pair_weighting must be 'none', 'balanced' or 'auto', got {self.pair_weighting!r}")
        if self.feature_init not in ("forward", "random"):
            raise ValueError(f"feature_init must be 'forward' or 'random', got {self.feature_init!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {self.precision!r}")
        if self.method not in ("sidhcnn", "dcmh"):
            raise ValueError(f"method must be 'sidhcnn' or 'dcmh', got {self.method!r}")
        if not isinstance(self.device, str) or not (
            self.device in ("cpu", "auto", "cuda") or self.device.startswith("cuda:")
        ):
            raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {self.device!r}")
        if isinstance(self.model, Mapping):  # from_dict passes nested dicts through replace()
            object.__setattr__(self, "model", ModelConfig(**self.model))
        if not isinstance(self.model, ModelConfig):
            raise TypeError(f"model must be a ModelConfig, got {type(self.model).__name__}")

    # ------------------------------------------------------------ conversions
    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (model fields may be given by name too).

        Example:
            >>> TrainConfig().replace(alpha=0.1, bits=16, ms_bands=6).model.ms_bands
            6
        """
        model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
        model_changes = {k: changes.pop(k) for k in list(changes) if k in model_fields}
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s): {', '.join(sorted(unknown))}")
        if model_changes:
            changes["model"] = dataclasses.replace(changes.get("model", self.model), **model_changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (nested ``model``); inverse of :meth:`from_dict`."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build a config from a dict such as :meth:`to_dict` returns.

        Keys may also be flat model fields (``pan_size = 128``) or a ``preset`` name
        from :data:`PRESETS`, applied before the other keys.

        Raises:
            ValueError: unknown keys or invalid values.
        """
        data = dict(data)
        preset = data.pop("preset", None)
        base = PRESETS[_check_preset(preset)] if preset is not None else cls()
        model = data.pop("model", None)
        if model is not None:
            if not isinstance(model, Mapping):
                raise TypeError(f"'model' must be a table/dict, got {type(model).__name__}")
            data.update(model)
        return base.replace(**data)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TrainConfig:
        """Read a config from a ``.toml`` or ``.json`` file (keys as in :meth:`from_dict`).

        A TOML file may hold the keys at the top level or under a ``[train]`` table.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        suffix = path.suffix.lower()
        if suffix == ".toml":
            import tomllib

            with path.open("rb") as fh:
                data = tomllib.load(fh)
        elif suffix == ".json":
            data = json.loads(path.read_text())
        else:
            raise ValueError(f"config files must end in .toml or .json, got {path.name}")
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a table/object at the top level")
        if set(data) == {"train"} and isinstance(data["train"], dict):
            data = data["train"]
        return cls.from_dict(data)

    def resolve_pair_weighting(self, task: str | None) -> Literal["none", "balanced"]:
        """``pair_weighting`` with "auto" resolved for a training set of ``task``.

        Example:
            >>> TrainConfig().resolve_pair_weighting("instance"), TrainConfig().resolve_pair_weighting("class")
            ('balanced', 'none')
        """
        if self.pair_weighting == "auto":
            return "balanced" if task == "instance" else "none"
        return self.pair_weighting

    @classmethod
    def weight_fields(cls) -> tuple[str, ...]:
        """Names of the loss-weight fields (``metadata={"loss_weight": True}``): alpha, beta, gamma."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("loss_weight"))

    def loss_weights(self) -> dict[str, float]:
        """``{field: value}`` of the loss weights, e.g. ``{"alpha": 1.0, "beta": 0.1, "gamma": 1.0}``."""
        return {name: float(getattr(self, name)) for name in self.weight_fields()}

    @property
    def weights(self) -> tuple[float, ...]:
        """The loss weights in field order: (α, β, γ)."""
        return tuple(self.loss_weights().values())


def _check_preset(name: Any) -> str:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; one of {', '.join(PRESETS)}")
    return str(name)


#: Table IV's configurations and the final default (Section IV-C: α = 1, β = 0.1, γ = 1).
PRESETS: dict[str, TrainConfig] = {
    "irsc": TrainConfig(alpha=0.0, beta=0.0, gamma=0.0),
    "iasc": TrainConfig(alpha=1.0, beta=0.0, gamma=0.0),
    "bqc": TrainConfig(alpha=1.0, beta=1.0, gamma=0.0),
    "fdc": TrainConfig(alpha=1.0, beta=1.0, gamma=1.0),
    "full": TrainConfig(alpha=1.0, beta=0.1, gamma=1.0),
    "dcmh": TrainConfig(alpha=0.0, beta=1.0, gamma=1.0, method="dcmh"),
}

#: Tables V–VII: the swept weight, its values, and the other two weights held fixed.
TABLE_SWEEPS: dict[str, dict[str, Any]] = {
    "alpha": {"values": (0.0, 0.1, 1.0, 10.0), "fixed": {"beta": 1.0, "gamma": 1.0}, "table": "V"},
    "beta": {"values": (0.0, 0.1, 1.0, 10.0), "fixed": {"alpha": 1.0, "gamma": 1.0}, "table": "VI"},
    "gamma": {"values": (0.0, 0.1, 1.0, 10.0), "fixed": {"alpha": 1.0, "beta": 0.1}, "table": "VII"},
}

_ABLATION_ORDER = ("irsc", "iasc", "bqc", "fdc")


def ablation_configs(base: TrainConfig | None = None) -> dict[str, TrainConfig]:
    """Table IV: IRSC; +IASC; +BQC; +FDC, each as ``base`` with the preset's α, β, γ.

    Returns:
        ``{"irsc": cfg, "iasc": cfg, "bqc": cfg, "fdc": cfg}`` in the table's order.
    """
    base = base or TrainConfig()
    return {name: base.replace(**PRESETS[name].loss_weights()) for name in _ABLATION_ORDER}


def sweep_configs(
    param: str, values: Iterable[float] | None = None, base: TrainConfig | None = None, *, paper_fixed: bool = True
) -> dict[float, TrainConfig]:
    """One config per value of α, β or γ (Tables V–VII).

    Args:
        param: "alpha", "beta" or "gamma".
        values: the values to try (default: the paper's 0, 0.1, 1, 10).
        base: the config to vary (default :class:`TrainConfig`).
        paper_fixed: hold the other two weights at the paper's values for that table
            (Table V: β = γ = 1; VI: α = γ = 1; VII: α = 1, β = 0.1); False keeps ``base``'s.

    Returns:
        ``{value: config}`` in the order of ``values``.
    """
    if param not in TABLE_SWEEPS:
        raise ValueError(f"param must be one of {', '.join(TABLE_SWEEPS)}, got {param!r}")
    base = base or TrainConfig()
    spec = TABLE_SWEEPS[param]
    if paper_fixed:
        base = base.replace(**spec["fixed"])
    vals = tuple(spec["values"] if values is None else values)
    if not vals:
        raise ValueError("values must not be empty")
    out: dict[float, TrainConfig] = {}
    for v in vals:
        _check_nonneg(param, v)
        out[float(v)] = base.replace(**{param: float(v)})
    return out
