"""``DielectricModule``: trains any ``(batch) -> (ε_inter, ω_D)`` model on the multi-objective loss.

Loss = ``eps_weight`` · MAE over all B × 2001 × 2 spectral values + ``drude_weight`` · MAE of ω_D (eV),
computed in float32 even under bf16 autocast. AdamW; per-step LR schedule: linear warm-up over
``warmup_epochs`` from ``warmup_start_lr`` to ``lr``, then cosine annealing to 0 at the last step.

Fused members (``members`` = K > 1, docs/training.md): the network is K copies of ``model``
trained as one (``models.members``); member k is initialised as a solo run with seed
``seed_everything + k`` would be, and all members see the same batches. Loss = Σₖ lossₖ, so each
member gets its solo gradient; clipping is per member; a member whose training loss is not finite
is stopped (its gradients are zeroed from then on; ``stopped_epoch`` keeps the epoch, which its
run record states) and the others go on. Metrics are logged per
member (``member<k>/val/loss``, …) and as their mean (``val/loss``, …); ``MemberRuns`` writes each
member as an ordinary run.

Reloading: a checkpoint stores the network as ``hyper_parameters["model"]`` =
``{class_path, init_args}`` (``DielectricNetwork.config``, the arguments it was built with), so
``DielectricModule.load_from_checkpoint(path)`` rebuilds it on its own, however the module was
built. A network of another class is not stored; reload its checkpoint with
``DielectricModule.load_from_checkpoint(path, model=SameModel(...))``. The run's full config is
also in ``<log_dir>/config.yaml``.
"""

from __future__ import annotations

import math
import os
from functools import partial
from typing import Literal

import pytorch_lightning as pl
import torch
from jsonargparse.typing import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from pytorch_lightning.core.mixins.hparams_mixin import _given_hyperparameters
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_info
from pytorch_lightning.utilities.seed import isolate_rng
from torch.optim.lr_scheduler import LambdaLR

from lightning_dielectric.data.datamodule import DielectricDataModule
from lightning_dielectric.data.schema import ENERGY_GRID
from lightning_dielectric.models.members import fuse, member_by_member
from lightning_dielectric.models.network import DielectricNetwork
from lightning_dielectric.training.members import clip_per_member, member_compute_for, member_tag
from lightning_dielectric.training.metrics import METRICS, SpectralMetrics, summarise_metrics, write_tables
from lightning_dielectric.training.plots import parity_figure, spectra_figure
from lightning_dielectric.training.schedule import warmup_cosine

NUM_PLOT_MATERIALS = 4
INSTANTIATOR = "pytorch_lightning.cli.instantiate_module"  # Lightning's allow-listed rebuild of class_path configs


class DielectricModule(pl.LightningModule):
    """Lightning wrapper: loss, optimiser, schedule, logging, metrics and TensorBoard figures.

    Args (range-typed, so the CLI rejects e.g. a negative ``lr`` while parsing):
        model: maps a ``CrystalGraph`` batch to ``(eps (B, 2001, 2), drude (B,))``.
        lr: peak AdamW learning rate.
        weight_decay: AdamW (decoupled) weight decay.
        warmup_epochs: length of the linear warm-up, in epochs (converted to optimizer steps).
        warmup_start_lr: learning rate at the first step.
        eps_weight: weight of the spectra MAE in the loss.
        drude_weight: weight of the ω_D MAE (eV) in the loss.
        plot_every_n_epochs: log spectra and Drude parity figures every this many epochs (0: never).
        compile: run the model through ``torch.compile(dynamic=True)`` (compiled in place on the first
            batch, so checkpoints keep their keys; one graph serves all batch sizes, recompiled only
            between training and evaluation mode). See docs/training.md for when it pays.
        members: train this many members of ``model`` together (fused seed training; 1: the solo run).
        member_compute: how a fused network is evaluated: ``stacked``, all members as one network of
            stacked weights (``models.members``), or ``sequential``, member after member through the
            solo network on the same stacked weights (same results, checkpoints and outputs; it keeps
            the shared batches, step and process, and pays on CPU at large widths, docs/training.md);
            ``auto``: chosen when the trainer's device is known (``training.members.member_compute_for``:
            sequential on a CPU for 3B and widths ≥ 256, else stacked; stacked with ``compile``).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        lr: PositiveFloat = 1e-3,
        weight_decay: NonNegativeFloat = 0.0,
        warmup_epochs: NonNegativeInt = 5,
        warmup_start_lr: PositiveFloat = 1e-7,
        eps_weight: NonNegativeFloat = 1.0,
        drude_weight: NonNegativeFloat = 1.0,
        plot_every_n_epochs: NonNegativeInt = 10,
        compile: bool = False,
        members: PositiveInt = 1,
        member_compute: Literal["auto", "stacked", "sequential"] = "auto",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"], logger=False)  # the network: see on_save_checkpoint
        self.member_seeds = [int(os.environ.get("PL_GLOBAL_SEED", 0)) + k for k in range(members)]
        solo = None  # the solo network that evaluates each member in turn (sequential), not a submodule
        if members > 1:
            networks = solo_members(model, self.member_seeds)
            model = fuse(networks)
            if member_compute == "sequential" and compile:
                raise ValueError("model.compile: true needs model.member_compute: stacked")
            if member_compute != "stacked" and not compile:
                solo = networks[0].to("meta")
        object.__setattr__(self, "_solo", solo)
        self._sequential = solo is not None and member_compute == "sequential"  # auto: decided in setup
        self.model = model
        if compile:
            model.compile(dynamic=True)
        self.val_metrics = torch.nn.ModuleList(SpectralMetrics() for _ in range(members))
        self.test_metrics = torch.nn.ModuleList(SpectralMetrics() for _ in range(members))
        # the epoch in which each member's training loss turned non-finite, −1 while it trains
        self.register_buffer("stopped_epoch", torch.full((members,), -1, dtype=torch.long), persistent=False)
        self._plot_batch: tuple | None = None
        self._train_sums: torch.Tensor | None = None  # this epoch's Σ n·(loss, eps_loss, drude_loss, 1)

    @property
    def active(self) -> torch.Tensor:
        """(K,) bool: the members still training."""
        return self.stopped_epoch < 0

    def forward(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        return member_by_member(self.model, self._solo, batch) if self._sequential else self.model(batch)

    def _losses(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per member (K,): loss, eps_loss, drude_loss; predictions with a member axis: eps (K, B, 2001, 2)
        and drude (K, B)."""
        eps, drude = self(batch)
        if self.hparams.members == 1:
            eps, drude = eps.unsqueeze(0), drude.unsqueeze(0)
        eps, drude = eps.float(), drude.float()
        eps_loss = (eps - batch.eps).abs().mean((1, 2, 3))
        drude_loss = (drude - batch.drude).abs().mean(1)
        loss = self.hparams.eps_weight * eps_loss + self.hparams.drude_weight * drude_loss
        return loss, eps_loss, drude_loss, eps, drude

    def on_train_epoch_start(self) -> None:
        self._train_sums = torch.zeros(4, self.hparams.members, dtype=torch.float64, device=self.device)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        losses, eps_loss, drude_loss, _, _ = self._losses(batch)
        n = batch.num_graphs
        self._train_sums += torch.stack([losses, eps_loss, drude_loss, torch.ones_like(losses)]).detach() * n
        if self.hparams.members == 1:
            loss = losses[0]
        else:  # a member with a non-finite loss stops for good; the others' gradients are their solo ones
            finite = torch.isfinite(losses.detach())
            if self.trainer.world_size > 1:  # every rank stops the same members
                finite = self.all_gather(finite).reshape(-1, finite.numel()).all(0)
            self.stopped_epoch.masked_fill_(self.active & ~finite, self.current_epoch)
            loss = torch.where(self.active, losses, torch.zeros_like(losses)).sum()
        if self._step_logged():  # each self.log costs Lightning about half a millisecond
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, batch_size=n)
            self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False,
                     batch_size=n)
        return loss

    def on_train_epoch_end(self) -> None:
        """Log the epoch's training losses: means over all structures of all ranks (weighted by batch size)."""
        sums = self.trainer.strategy.reduce(self._train_sums, reduce_op="sum")
        if sums[3, 0] == 0:
            return
        means = (sums[:3] / sums[3]).float()  # (3, K)
        members = self.hparams.members
        columns = [means[:, k] for k in range(members)] + ([means.mean(1)] if members > 1 else [])
        for k, (loss, eps_loss, drude_loss) in enumerate(columns):  # per member, then the members' mean
            tag = member_tag(k, members) if k < members else ""
            self.log(f"{tag}train/loss", loss, on_step=False, on_epoch=True, prog_bar=not tag)
            self.log_dict({f"{tag}train/eps_loss": eps_loss, f"{tag}train/drude_loss": drude_loss},
                          on_step=False, on_epoch=True)
        if members > 1:
            stopped = [self.member_seeds[k] for k in (~self.active).nonzero().flatten().tolist()]
            if stopped:
                self.print(f"fused members with seeds {stopped} stopped: non-finite training loss")

    def _step_logged(self) -> bool:
        """Whether Lightning writes this optimizer step's on-step logs (every ``log_every_n_steps``)."""
        every = self.trainer.log_every_n_steps
        return every > 0 and (self.global_step + 1) % every == 0

    def on_before_optimizer_step(self, optimizer) -> None:
        # Stopped members get no update from their (non-finite) gradients. On an accelerator the mask
        # is always applied, since reading ``active`` on the host would wait for the device every step.
        if self.hparams.members > 1 and (self.device.type != "cpu" or not bool(self.active.all())):
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad.view(self.hparams.members, -1).masked_fill_(~self.active.unsqueeze(1), 0.0)
        if not self._step_logged():
            return
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if grads:  # the same total norm the clipping uses
            self.log("train/grad_norm", torch.nn.utils.get_total_norm(grads), on_step=True, on_epoch=False)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Lightning's clipping; on CPU by norm, the multiply by 1.0 that ``clip_grad_norm_`` applies when
        the norm is within ``gradient_clip_val`` is skipped (same gradients, one pass fewer over them)."""
        scaled = getattr(self.trainer.precision_plugin, "scaler", None) is not None  # fp16: Lightning's checks
        if self.hparams.members > 1 and gradient_clip_val and not scaled:
            if gradient_clip_algorithm not in (None, "norm"):  # None: Lightning's default, norm
                raise ValueError("fused members clip by norm only (trainer.gradient_clip_algorithm=norm)")
            clip_per_member(self.model.parameters(), gradient_clip_val, self.hparams.members)
            return
        if self.device.type != "cpu" or gradient_clip_algorithm != "norm" or not gradient_clip_val or scaled:
            return super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        params = [p for p in self.trainer.precision_plugin.main_params(optimizer) if p.grad is not None]
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        if not gradient_clip_val / (norm + 1e-6) >= 1.0:  # clip_grad_norm_'s coefficient; NaN clips as there
            torch.nn.utils.clip_grads_with_norm_(params, gradient_clip_val, norm)

    def _eval_step(self, batch, stage: str, metrics: SpectralMetrics) -> torch.Tensor:
        """Log the losses, update the metrics; returns the predicted spectra (B, 2001, 2)."""
        losses, eps_loss, drude_loss, eps, drude = self._losses(batch)
        n, members = batch.num_graphs, self.hparams.members
        values = {"loss": losses, "eps_loss": eps_loss, "drude_loss": drude_loss}
        for k in range(members):
            for name, value in values.items():
                self.log(f"{member_tag(k, members)}{stage}/{name}", value[k], on_step=False, on_epoch=True,
                         batch_size=n, sync_dist=True, prog_bar=name == "loss" and members == 1)
            metrics[k].update(eps[k], drude[k], batch.eps, batch.drude, list(batch.mat_id))
        if members > 1:
            for name, value in values.items():
                self.log(f"{stage}/{name}", value.mean(), on_step=False, on_epoch=True, batch_size=n, sync_dist=True,
                         prog_bar=name == "loss")
        return eps[0]

    def validation_step(self, batch, batch_idx: int) -> None:
        eps = self._eval_step(batch, "val", self.val_metrics)
        if batch_idx == 0 and self._plotting_epoch():  # the validation order is fixed: same materials every time
            k = min(NUM_PLOT_MATERIALS, batch.num_graphs)
            self._plot_batch = (eps[:k].cpu(), batch.eps[:k].cpu(), list(batch.mat_id)[:k])

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "test", self.test_metrics)

    def predict_step(self, batch, batch_idx: int) -> dict:
        """Predictions, with a leading member axis for fused members."""
        eps, drude = self(batch)
        return {"mat_id": list(batch.mat_id), "eps": eps.float().cpu(), "drude": drude.float().cpu()}

    def _plotting_epoch(self) -> bool:
        k = self.hparams.plot_every_n_epochs
        last = self.trainer.max_epochs is not None and self.current_epoch + 1 == self.trainer.max_epochs
        return bool(k) and not self.trainer.sanity_checking and ((self.current_epoch + 1) % k == 0 or last)

    def on_validation_epoch_end(self) -> None:
        values = [metrics.compute() for metrics in self.val_metrics]
        for metrics in self.val_metrics:
            metrics.reset()
        if self.trainer.sanity_checking:
            return
        members = self.hparams.members
        summaries = [summarise_metrics(v) for v in values]
        for k, summary in enumerate(summaries):  # same on all ranks
            self.log_dict({f"{member_tag(k, members)}val/{name}": summary[f"{name}/mean"] for name in METRICS},
                          sync_dist=True)
        if members > 1:
            self.log_dict({f"val/{name}": sum(s[f"{name}/mean"] for s in summaries) / members for name in METRICS},
                          sync_dist=True)
        values = values[0]
        if self._plot_batch is not None and self.trainer.is_global_zero and isinstance(self.logger, TensorBoardLogger):
            pred, true, ids = self._plot_batch
            writer, step = self.logger.experiment, self.global_step
            writer.add_figure("val/spectra", spectra_figure(ENERGY_GRID, pred.numpy(), true.numpy(), ids), step)
            parity = parity_figure(values["drude_pred"].cpu().numpy(), values["drude_true"].cpu().numpy())
            writer.add_figure("val/drude_parity", parity, step)
        self._plot_batch = None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if isinstance(self.model, DielectricNetwork):  # rebuilt by load_from_checkpoint through INSTANTIATOR
            hparams = checkpoint.setdefault(self.CHECKPOINT_HYPER_PARAMS_KEY, {})
            hparams.update(model=self.model.config, _instantiator=INSTANTIATOR)
        checkpoint["member_seeds"] = list(self.member_seeds)
        checkpoint["member_stopped_epoch"] = self.stopped_epoch.tolist()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.member_seeds = list(checkpoint.get("member_seeds", self.member_seeds))
        if "member_stopped_epoch" in checkpoint:
            self.stopped_epoch.copy_(torch.tensor(checkpoint["member_stopped_epoch"]))
        elif "member_active" in checkpoint:  # written before stop epochs were kept: stopped by then
            stopped = ~torch.tensor(checkpoint["member_active"], dtype=torch.bool)
            self.stopped_epoch.masked_fill_(stopped.to(self.stopped_epoch.device), int(checkpoint.get("epoch", 0)))

    def on_test_epoch_end(self) -> None:
        members = self.hparams.members
        summaries = [summarise_metrics(metrics.compute()) for metrics in self.test_metrics]
        for metrics in self.test_metrics:
            metrics.reset()
        ckpt = self.trainer.ckpt_path
        # on every rank: ``trainer.log_dir`` is a collective under DDP
        directory = os.path.dirname(os.path.abspath(ckpt)) if ckpt else self.trainer.log_dir or os.getcwd()
        for k, summary in enumerate(summaries):
            tag = member_tag(k, members)
            self.log_dict({f"{tag}test/{name}": v for name, v in summary.items()}, sync_dist=True)  # same on all ranks
            if self.trainer.is_global_zero:
                write_tables(summary, directory, stem=f"test_metrics{'_' + tag.rstrip('/') if tag else ''}")

    def run_hparams(self) -> dict:
        """What identifies the run in TensorBoard's HParams dashboard: model, w, D, seed, lr, ... (the
        ``RunResult`` callback adds the family and the parameter count N and logs them)."""
        init_args = dict(self.model.hparams) if isinstance(self.model, DielectricNetwork) else {}
        trainer = self._attached_trainer()
        datamodule = trainer.datamodule if trainer is not None else None
        hp = {
            "model": type(self.model).__name__,
            "width": init_args.get("width", getattr(self.model, "width", -1)),
            "D": getattr(datamodule, "num_train", None) or getattr(datamodule, "train_size", None) or -1,
            "seed": int(os.environ.get("PL_GLOBAL_SEED", -1)),
            "members": self.hparams.members,
        }
        hp.update({k: self.hparams[k] for k in ("lr", "weight_decay", "warmup_epochs", "eps_weight", "drude_weight")})
        if trainer is not None:
            hp["max_epochs"] = trainer.max_epochs
        if datamodule is not None:
            hp["data"] = {k: v for k, v in datamodule.hparams.items() if not k.startswith("_")}
        return hp

    def _attached_trainer(self) -> pl.Trainer | None:
        """The Trainer driving this module, or None outside one."""
        try:
            return self.trainer
        except RuntimeError:  # Lightning: "not attached to a `Trainer`"
            return None

    def setup(self, stage: str) -> None:
        """Fail before any step when the data's graphs are not the ones the network reads (e.g. 3B
        without triplets); ``lightning fit`` makes them the same. Resolves ``member_compute: auto``."""
        if self._solo is not None and self.hparams.member_compute == "auto":
            compute = member_compute_for(self._solo, self.trainer.strategy.root_device)
            self._sequential = compute == "sequential"
            rank_zero_info(f"fused members: member_compute auto -> {compute} on {self.trainer.strategy.root_device.type}")
        datamodule = self.trainer.datamodule
        if not (isinstance(self.model, DielectricNetwork) and isinstance(datamodule, DielectricDataModule)):
            return
        data, model = datamodule.graph_cutoffs, self.model.graph_cutoffs
        wrong = [f"data.{key}={data[key]} but {type(self.model).__name__} reads {key}={model[key]}"
                 for key in model if data[key] != model[key]]
        if wrong:
            raise ValueError("; ".join(wrong) + " (build the DataModule with the model's graph_cutoffs)")

    def configure_optimizers(self) -> dict:
        # the fused kernel (same update rule) is several times faster than the per-tensor loops on CPU and GPU
        fused = self.device.type in ("cpu", "cuda")
        # one parameter group: members share lr and weight decay, and AdamW is element-wise, so every
        # member's slice of a stacked tensor gets exactly its solo update
        optimizer = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay, fused=fused or None
        )
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise ValueError("the LR schedule needs a finite run: set trainer.max_epochs or trainer.max_steps")
        per_epoch = math.ceil(self.trainer.num_training_batches / self.trainer.accumulate_grad_batches)
        schedule = partial(
            warmup_cosine,
            warmup_steps=round(self.hparams.warmup_epochs * per_epoch),
            total_steps=int(total),
            start_factor=self.hparams.warmup_start_lr / self.hparams.lr,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": LambdaLR(optimizer, schedule), "interval": "step"}}


def solo_members(model: torch.nn.Module, seeds: list[int]) -> list[torch.nn.Module]:
    """One copy of ``model`` per seed, each initialised as a solo run with that seed is (its global
    RNGs seeded, then the network built from its config); the caller's RNG state is left as it was."""
    if not isinstance(model, DielectricNetwork):
        raise ValueError(f"members > 1 needs a lightning_dielectric.models network, got {type(model).__name__}")
    networks, env = [], {k: os.environ.get(k) for k in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")}
    # LightningCLI hands the module's own hyper-parameters to every save_hyperparameters() called while
    # it builds the module; the networks built here keep theirs
    token = _given_hyperparameters.set(None)
    try:
        with isolate_rng():
            for seed in seeds:
                pl.seed_everything(seed, verbose=False)
                networks.append(type(model)(**model.hparams))
    finally:
        _given_hyperparameters.reset(token)
    for key, value in env.items():  # seed_everything also sets these
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    return networks
