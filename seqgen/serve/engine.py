"""Continuous batching: one thread steps every active row of every request together.

    submit(job) ─> waiting (FIFO) ─> primed (its prompts run alone) ─> joins the batch
    each step:  logits [B, V] ─> tokens [B] (choose.py) ─> pieces to each job's outbox
                ─> rows that ended or whose client left drop out ─> stepper(tokens) [B]

The batch state is the model's recurrent state with rows on dim 1, carried by the
model's own stepper (`model.stepper(state)`, the same as `seqgen generate` uses). When
rows join or leave, the state is read back out, rows are picked (`select_batch`) or
appended (torch.cat on dim 1), and a new stepper is made: at most once per step.

Each prompt is primed on its own (batch 1, then repeated for n), and each row draws
from its own generator (seed + choice index), so a request's text depends only on its
own arguments and seed. Up to float rounding: the batched matrix products may round the
last bit differently from batch 1 (~1e-7), which in practice never changes a token.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict, deque

import torch

from seqgen import select_batch
from seqgen.generate import start_token

from .choose import choose
from .errors import RequestError
from .rows import Row

log = logging.getLogger("seqgen.serve")


class Job:
    """One completions request inside the engine: its rows' settings and its outbox.
    Pieces (and a final None, or an Exception) arrive on `outbox` in the job's loop."""

    def __init__(self, request, strategy, prompt_ids: list[torch.Tensor], vocab, task: str,
                 loop: asyncio.AbstractEventLoop):
        self.request, self.strategy, self.prompt_ids = request, strategy, prompt_ids
        self.vocab, self.task, self.loop = vocab, task, loop
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.ended = asyncio.Event()     # set with the last item (None or an Exception)
        self.rows = len(prompt_ids) * request.n
        self.left = self.rows            # rows not yet finished (engine thread only)
        self.cancelled = False

    def cancel(self) -> None:
        """The client went away: its rows leave the batch at the next step."""
        self.cancelled = True


class Engine:
    """The batching loop, on a daemon thread started by `start()`."""

    def __init__(self, model, limits):
        self.model, self.limits = model, limits
        self.device = next(model.parameters()).device
        self.cond = threading.Condition()
        self.waiting: deque[Job] = deque()
        self.rows: list[Row] = []
        self.logits = None              # [B, V] next-token logits of each row
        self.stepper = None
        self.thread = None
        self.stopping = False
        self.admitted_rows = 0          # rows of admitted jobs still in the batch
        self.largest_batch = 0          # most rows ever stepped together (stats)
        self.steps = 0

    # -- the outside (event loop) -------------------------------------------------------------
    def start(self) -> None:
        with self.cond:
            if self.thread is None or not self.thread.is_alive():
                self.stopping = False
                self.thread = threading.Thread(target=self._run, name="seqgen-serve-engine",
                                               daemon=True)
                self.thread.start()

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        if self.thread is not None:
            self.thread.join(timeout=10)

    def submit(self, job: Job) -> None:
        """Queue a job, or refuse it with 429 when too many are already waiting."""
        self.start()
        with self.cond:
            if len(self.waiting) >= self.limits.max_waiting:
                raise RequestError(f"the server is busy: {len(self.waiting)} requests are "
                                   f"already waiting; retry later", None, status=429,
                                   code="server_busy")
            self.waiting.append(job)
            self.cond.notify_all()

    @property
    def active_rows(self) -> int:
        return self.admitted_rows

    @property
    def waiting_count(self) -> int:
        return len(self.waiting)

    # -- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        with torch.inference_mode():
            while True:
                with self.cond:
                    while not self.rows and not self.waiting and not self.stopping:
                        self.cond.wait()
                    if self.stopping:
                        self._fail(self.rows, RuntimeError("the server is shutting down"))
                        return
                try:
                    self._step()
                except Exception as e:        # a bug: fail the batch, keep serving
                    log.error("the batching step failed", exc_info=e)
                    self._fail(self.rows, e)
                    self.rows, self.logits, self.stepper = [], None, None
                    with self.cond:
                        self.admitted_rows = 0

    def _step(self) -> None:
        """Choose a token for every row, hand out pieces, then feed the rows that go on."""
        out: dict = defaultdict(list)      # loop -> [(job, piece or None)]
        keep = list(range(len(self.rows)))
        tokens = None
        if self.rows:
            self.steps += 1
            self.largest_batch = max(self.largest_batch, len(self.rows))
            tokens = self._choose()                                            # [B]
            keep = self._advance(tokens, out)
        new = self._admit(out)
        self._deliver(out)
        self._regroup(tokens, keep, new)

    def _choose(self) -> torch.Tensor:
        groups: dict[str, list[int]] = defaultdict(list)
        for i, row in enumerate(self.rows):
            groups[row.job.request.key].append(i)
        if len(groups) == 1:
            return choose(self.rows[0].job.strategy, self.logits, self.rows)
        tokens = torch.empty(len(self.rows), dtype=torch.long, device=self.device)
        for members in groups.values():
            index = torch.tensor(members, device=self.device)
            rows = [self.rows[i] for i in members]
            tokens[index] = choose(rows[0].job.strategy, self.logits[index], rows)
        return tokens

    def _advance(self, tokens: torch.Tensor, out: dict) -> list[int]:
        """Give each row its token; returns the rows that go on."""
        logp = torch.log_softmax(self.logits.float(), dim=-1)                  # [B, V]
        chosen = logp.gather(1, tokens[:, None])[:, 0].tolist()                # [B]
        k = max((r.job.request.logprobs or 0 for r in self.rows), default=0)
        top_v = top_i = None
        if k:
            top = logp.topk(min(k, logp.shape[1]), dim=-1)                     # [B, k]
            top_v, top_i = top.values.tolist(), top.indices.tolist()
        names, keep = self.rows[0].job.vocab.tokens, []
        for i, (row, token) in enumerate(zip(self.rows, tokens.tolist())):
            job = row.job
            if job.cancelled:
                continue
            n = job.request.logprobs
            tops = ({names[t]: v for t, v in zip(top_i[i][:n], top_v[i][:n])}
                    if n is not None and k else {} if n is not None else None)
            piece = row.advance(token, chosen[i], tops)
            if piece is not None:
                out[job.loop].append((job, piece))
            if row.finished:
                job.left -= 1
                if job.left == 0:
                    out[job.loop].append((job, None))
            else:
                keep.append(i)
        return keep

    def _admit(self, out: dict) -> tuple[list[Row], list, list]:
        """Prime the waiting jobs that fit -> (rows, their states, their logits [n, V])."""
        new_rows, states, logits = [], [], []
        while True:
            with self.cond:
                if not self.waiting:
                    break
                job = self.waiting[0]
                if not job.cancelled and (self.admitted_rows + job.rows
                                          > self.limits.max_active_rows):
                    break
                self.waiting.popleft()
                if job.cancelled:
                    continue
                self.admitted_rows += job.rows
            try:
                rows, state, first = self._prime(job)
            except Exception as e:
                with self.cond:
                    self.admitted_rows -= job.rows
                out[job.loop].append((job, e))
                continue
            new_rows += rows
            states.append(state)
            logits.append(first)
        return new_rows, states, logits

    def _prime(self, job: Job):
        """Each prompt alone through the model (batch 1), repeated for n:
        -> rows, state (rows on dim 1), logits [rows, V]."""
        rows, states, logits = [], [], []
        always = job.task == "lines" and job.vocab.bos_id is not None
        n = job.request.n
        for p, ids in enumerate(job.prompt_ids):
            fed = (torch.cat([torch.tensor([start_token(job.vocab)]), ids])
                   if always or ids.numel() == 0 else ids)
            out, state = self.model(fed.long().to(self.device)[:, None])       # [T, 1, V]
            repeat = torch.zeros(n, dtype=torch.long, device=self.device)
            states.append(select_batch(state, repeat))                         # rows on dim 1
            logits.append(out[-1].expand(n, -1))                               # [n, V]
            for j in range(n):
                rows.append(Row(job, p * n + j, job.request.prompts[p], ids, self.device))
        return rows, cat_states(states), torch.cat(logits)

    def _regroup(self, tokens, keep: list[int], new) -> None:
        """Feed the tokens; drop the rows that ended; append the newly primed rows."""
        new_rows, states, firsts = new
        same = len(keep) == len(self.rows)
        if not same:
            with self.cond:
                self.admitted_rows -= len(self.rows) - len(keep)
        if self.rows and same and not new_rows:                          # the common case
            self.logits = self.stepper(tokens)                                  # [B, V]
            return
        state, logits, rows = None, None, []
        if keep:
            logits = self.stepper(tokens)                                       # [B, V]
            state = self.stepper.state
            if not same:
                index = torch.tensor(keep, device=self.device)
                state, logits = select_batch(state, index), logits[index]
            rows = [self.rows[i] for i in keep]
        if new_rows:
            state = cat_states(([state] if state is not None else []) + states)
            logits = torch.cat(([logits] if logits is not None else []) + firsts)
            rows += new_rows
        self.rows, self.logits = rows, logits
        self.stepper = self.model.stepper(state) if rows else None

    def _deliver(self, out: dict) -> None:
        for loop, items in out.items():
            try:
                loop.call_soon_threadsafe(_put_all, items)
            except RuntimeError:               # the loop is closed: nobody is listening
                for job, _ in items:
                    job.cancel()

    def _fail(self, rows: list[Row], error: Exception) -> None:
        out: dict = defaultdict(list)
        for job in {id(r.job): r.job for r in rows}.values():
            out[job.loop].append((job, error))
        self._deliver(out)


def _put_all(items) -> None:
    for job, item in items:
        job.outbox.put_nowait(item)
        if item is None or isinstance(item, Exception):
            job.ended.set()


def cat_states(states: list):
    """Join states along the batch dim (1), keeping their structure (tensor or tuple)."""
    first = states[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(states, 1)
    return type(first)(cat_states([s[i] for s in states]) for i in range(len(first)))
