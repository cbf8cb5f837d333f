"""Data-parallel training: which process this is among those torchrun started.

seqgen has no launcher of its own. `torchrun --nproc_per_node=N -m seqgen run SPEC` (or
`seqgen run SPEC --nproc N`, which calls torch's elastic launcher) starts N processes and
gives each RANK, WORLD_SIZE, LOCAL_RANK and a rendezvous in its environment; `World`
reads them, joins torch's process group (gloo on CPU, nccl on CUDA with one device per
LOCAL_RANK) and is what the run layer asks everything it needs across processes:

    World.from_env()            the CLI's world; an embedding application passes its own
    world.parallel(module)      DistributedDataParallel around the training forward
    world.sum([...])            floats summed over every rank (token counts, losses, flags)
    world.rows(t)               every rank's rows of a [.., b, ..] tensor, as the global batch
    world.each(t)               every rank's copy of a tensor (RNG states), rank order

A single process is `World()` (rank 0 of 1): every method is the identity and nothing
touches torch.distributed, so one-process training is exactly what it was.

How the work is split (the samplers' rule, seqgen/batch.py): `batch_size` is the global
batch and rank r takes rows r, r+W, r+2W, ... of it. Global row r + jW is rank r's local
row j, so `rows` (stack over ranks, then interleave) rebuilds the global batch exactly.
"""
from __future__ import annotations

import contextlib
import datetime
import gc
import os
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch

from .errors import SpecError, TrainingError

# How long a rank waits for the others at a collective before giving up. Long, because
# the others wait while rank 0 alone encodes a large corpus into its token cache, writes
# a checkpoint or generates; a rank that dies is seen at once anyway (its sockets close,
# and torchrun stops the rest), so this only bounds a true hang.
TIMEOUT = datetime.timedelta(hours=3)


@dataclass(frozen=True)
class World:
    """Where this process stands among data-parallel processes.

    rank:       this process's number, 0..size-1 (torchrun's RANK); rank 0 writes
    size:       how many processes train together (WORLD_SIZE); 1 is a single process
    local_rank: its number on this machine (LOCAL_RANK): the CUDA device it trains on
    """
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, env=None) -> "World":
        """The world torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK),
        or a single process when WORLD_SIZE is absent."""
        env = os.environ if env is None else env
        try:
            size = int(env.get("WORLD_SIZE", "1"))
            rank, local = int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0"))
        except ValueError as e:
            raise SpecError([f"environment: RANK, WORLD_SIZE and LOCAL_RANK must be "
                             f"integers (torchrun sets them): {e}"]) from None
        if not 0 <= rank < size:
            raise SpecError([f"environment: RANK={rank} is outside 0..WORLD_SIZE-1 "
                             f"(WORLD_SIZE={size})"])
        return cls(rank, size, local)

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes the run directory and prints."""
        return self.rank == 0

    def __str__(self) -> str:
        return f"rank {self.rank} of {self.size}"

    # -- joining ----------------------------------------------------------------------------
    def device(self, device: torch.device) -> torch.device:
        """The device this rank trains on: its LOCAL_RANK's GPU when the run uses CUDA."""
        if self.distributed and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    @contextlib.contextmanager
    def joined(self, device: torch.device) -> Iterator["World"]:
        """Join torch's process group for the block (gloo, or nccl on CUDA), unless one
        is already set up (an application that joined it itself); leave it afterwards."""
        import torch.distributed as dist
        if self.distributed and device.type == "cuda":
            torch.cuda.set_device(self.local_rank)
        if not self.distributed or dist.is_initialized():
            yield self
            return
        if not dist.is_available():
            raise TrainingError("this build of torch has no torch.distributed; "
                                "train in one process")
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            dist.init_process_group(backend, rank=self.rank, world_size=self.size,
                                    timeout=TIMEOUT)
        except (ValueError, RuntimeError) as e:    # no MASTER_ADDR, an unreachable store
            first = (str(e).strip() or type(e).__name__).splitlines()[0]
            raise TrainingError(f"{self}: could not join the other ranks ({first}); start "
                                f"seqgen with torchrun, which sets RANK, WORLD_SIZE, "
                                f"MASTER_ADDR and MASTER_PORT") from e
        try:
            yield self
            # DDP objects still alive when the group goes abort the process at exit
            # ("terminate called without an active exception"): collect them first
            # (Run.release drops its own), then leave together
            gc.collect()
            self.barrier()
        finally:
            dist.destroy_process_group()

    # -- collectives ------------------------------------------------------------------------
    def parallel(self, module: torch.nn.Module, device: torch.device, *,
                 some_unused: bool = False) -> torch.nn.Module:
        """`module` wrapped in DistributedDataParallel (gradients averaged over ranks in
        backward); the module itself in one process. some_unused: some steps leave
        parameters without gradients (a learned initial state, when the state is
        carried), so DDP must look for them (a graph traversal per step)."""
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel
        ids = [device.index] if device.type == "cuda" else None
        # gradient_as_bucket_view: gradients live in DDP's all-reduce buckets, which
        # saves a copy in and out of them every step (2 ranks on 2 cores: 1.37x -> 1.55x)
        return DistributedDataParallel(module, device_ids=ids, gradient_as_bucket_view=True,
                                       find_unused_parameters=some_unused)

    def sum(self, values: Sequence[float]) -> list[float]:
        """`values` summed over every rank (in float64, so token counts stay exact)."""
        return self.sum_later(values)()

    def sum_later(self, values: Sequence[float]) -> Callable[[], list[float]]:
        """`sum` started now and finished by calling the result: the communication runs
        while this rank computes (a step's token count during its forward, its loss
        during backward)."""
        if not self.distributed:
            return lambda: [float(v) for v in values]
        import torch.distributed as dist
        t = torch.tensor([float(v) for v in values], dtype=torch.float64,
                         device=self._device())
        with self.guarded():
            work = dist.all_reduce(t, async_op=True)

        def finish() -> list[float]:
            with self.guarded():
                work.wait()
            return t.tolist()
        return finish

    def rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """[.., b, ..] on every rank (dim 1 is the batch: states are [L*D, b, H]) ->
        [.., b*W, ..] with rank r's row j at global row r + j*W. Shapes must agree."""
        if not self.distributed:
            return tensor
        parts = self.each(tensor)                                  # W x [L, b, H]
        stacked = torch.stack(parts, dim=2)                        # [L, b, W, H]
        shape = list(tensor.shape)
        shape[1] *= self.size
        return stacked.reshape(shape)

    def mine(self, tensor: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a global [.., B, ..] tensor (the inverse of `rows`)."""
        return tensor if not self.distributed else tensor[:, self.rank::self.size].contiguous()

    def each(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's `tensor` (same shape and dtype on every rank), in rank order, on
        the tensor's own device."""
        if not self.distributed:
            return [tensor]
        import torch.distributed as dist
        local = tensor.detach().to(self._device()).contiguous()
        parts = [torch.empty_like(local) for _ in range(self.size)]
        self._collective(dist.all_gather, parts, local)
        return [p.to(tensor.device) for p in parts]

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist
            self._collective(dist.barrier)

    def _device(self) -> torch.device:
        """Where collective tensors live: nccl needs this rank's GPU, gloo the CPU."""
        import torch.distributed as dist
        if dist.get_backend() == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def _collective(self, op, *args) -> None:
        with self.guarded():
            op(*args)

    @contextlib.contextmanager
    def guarded(self) -> Iterator[None]:
        """Collectives in the block (DDP's all-reduce in backward too) whose failure (a
        rank that died, a timeout) becomes one TrainingError saying which rank saw it."""
        if not self.distributed:
            yield
            return
        import torch.distributed as dist
        try:
            yield
        except dist.DistError as e:     # gloo: "Connection closed by peer", timeouts, ...
            raise lost_peer(e) from e


def lost_peer(error: BaseException) -> TrainingError:
    first = (str(error).strip() or type(error).__name__).splitlines()[0]
    return TrainingError(f"lost contact with the other ranks ({first}); another rank "
                         f"stopped or died (torchrun names the one that failed first)")


def batch_problem(spec: dict, world: World) -> str | None:
    """The global batch must split evenly over the ranks, so that every rank steps with
    as many rows and the averaged gradient is the single-process one."""
    batch = spec["sampler"].get("batch_size")
    if not world.distributed or not isinstance(batch, int):
        return None
    if batch % world.size:
        return (f"$.sampler.batch_size: {batch} rows do not split evenly over "
                f"{world.size} processes (WORLD_SIZE={world.size}); batch_size is the "
                f"global batch, so use a multiple of {world.size}")
    return None


def check_split(spec: dict, world: World) -> None:
    """SpecError if the spec's global batch does not split over `world`."""
    if (problem := batch_problem(spec, world)) is not None:
        raise SpecError([problem])
