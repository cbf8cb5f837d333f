"""Continuous batching: one thread steps every active row of every request together.

    submit(job) ─> waiting (FIFO) ─> primed (its prompts run alone) ─> joins the batch
    each step:  logits [B, V] ─> tokens [B] (choose.py) ─> pieces to each job's outbox
                ─> rows that ended or whose client left drop out ─> stepper(tokens) [B]

The batch state is the model's recurrent state with rows on dim 1, carried by the
cell's own stepper (`cell.stepper(state)`, as `seqgen generate` uses) between the
model's embedding and its head (`RowStepper`). When
rows join or leave, the state is read back out, rows are picked (`select_batch`) or
appended (torch.cat on dim 1), and a new stepper is made: at most once per step.

Each prompt is primed on its own (batch 1, then repeated for n), and each row draws
from its own generator (seed + choice index), so a request's text depends only on its
own arguments and seed, bit for bit. That takes care: matrix-product kernels pick their
summation order by batch size (on this project's CPU, one row rounds differently from
two, and torch's RNN cells' products from 16 rows on differently from fewer), so a row's
numbers could depend on how many rows share its step. At start the engine finds, by
trying, the smallest batch size from which this model's step gives each row the same
numbers whatever the batch (`invariant_from`), and steps at least that many rows,
padded with copies of the first row whose outputs are dropped. A request served alone
and one batched with 63 others then match exactly (tests/test_serve_batching.py).
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

CANDIDATES = (2, 4, 8, 16, 32, 64)    # batch sizes tried by invariant_from


class RowStepper:
    """The model's TokenStepper (embedding -> cell stepper -> head) with the head's
    weight kept as a contiguous [H, V] copy: nn.Linear multiplies by the transposed
    [V, H] weight, whose kernels change their rounding at 16 rows; this layout rounds a
    row the same at every batch size from 2 on. ids [B] -> logits [B, V]."""

    def __init__(self, model, state):
        self.embedding, self.cell = model.embedding, model.cell.stepper(state)
        head = model.head
        self.weight = head.weight.detach().t().contiguous()                   # [H, V]
        self.bias = None if head.bias is None else head.bias.detach()

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.cell(self.embedding(ids))                                   # [B, H*D]
        return h @ self.weight if self.bias is None else torch.addmm(self.bias, h, self.weight)

    @property
    def state(self):
        return self.cell.state


def invariant_from(model, device, limit: int) -> int:
    """The smallest batch size (of CANDIDATES, at most `limit`) from which stepping `model`
    gives one row the same numbers, bit for bit, whatever the batch's size, the row's
    position and the other rows; found by trying (kernels differ by CPU and BLAS), twice
    over with other values. 1 when none is (then batched text may differ from a lone
    request's by rounding; the engine says so in its log)."""
    g = torch.Generator().manual_seed(0)

    def random_state(rows):                      # (h,) or (h, c), each [L*D, rows, H]
        start = model.initial_state(rows, device)
        parts = (start,) if isinstance(start, torch.Tensor) else start
        return tuple(torch.randn(p.shape, generator=g).to(device) for p in parts)

    def two_steps(rows, position, mine, token):
        """The row's logits after one and two steps, at `position` among `rows` rows."""
        parts = random_state(rows)
        for part, own in zip(parts, mine):
            part[:, position] = own[:, 0]
        ids = torch.randint(model.vocab_size, (rows,), generator=g).to(device)
        ids[position] = token
        step = RowStepper(model, parts[0] if len(parts) == 1 else tuple(parts))
        return [step(ids)[position].clone() for _ in range(2)]

    def invariant(m: int) -> bool:
        sizes = sorted(r for r in {m, m + 1, 2 * m + 1, 3 * m + 2, 33, 64, limit}
                       if m <= r <= min(limit, 64))
        tries = [(rows, position) for rows in sizes
                 for position in sorted({0, rows // 2, rows - 1})]
        for token in (1, 2):                     # two rounds, each with a row of its own
            mine = random_state(1)
            first = two_steps(*tries[0], mine, token)
            for rows, position in tries[1:]:
                got = two_steps(rows, position, mine, token)
                if not all(torch.equal(a, b) for a, b in zip(got, first)):
                    return False
        return True

    with torch.inference_mode():
        for m in CANDIDATES:
            if m <= limit and invariant(m):
                return m
    return 1


def padded(state, rows: int, least: int, device):
    """state with rows on dim 1, padded to `least` rows with copies of row 0."""
    if rows >= least:
        return state
    index = torch.cat([torch.arange(rows), torch.zeros(least - rows, dtype=torch.long)])
    return select_batch(state, index.to(device))


def first_rows(state, rows: int):
    """The first `rows` rows of a (possibly padded) state."""
    if isinstance(state, torch.Tensor):
        return state if state.shape[1] == rows else state[:, :rows]
    return type(state)(first_rows(s, rows) for s in state)


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
        # Step at least this many rows, so that a row's numbers never depend on the batch.
        self.min_rows = invariant_from(model, self.device, limits.max_active_rows)
        if self.min_rows == 1:
            log.warning("this model's steps round differently at different batch sizes on "
                        "this machine: a request's text may differ, by rounding, between "
                        "being served alone and batched with others")
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
            self.logits = self._feed(tokens)                                    # [B, V]
            return
        state, logits, rows = None, None, []
        if keep:
            logits = self._feed(tokens)                                         # [B, V]
            state = first_rows(self.stepper.state, len(tokens))
            if not same:
                index = torch.tensor(keep, device=self.device)
                state, logits = select_batch(state, index), logits[index]
            rows = [self.rows[i] for i in keep]
        if new_rows:
            state = cat_states(([state] if state is not None else []) + states)
            logits = torch.cat(([logits] if logits is not None else []) + firsts)
            rows += new_rows
        self.rows, self.logits = rows, logits
        self.stepper = (RowStepper(self.model, padded(state, len(rows), self.min_rows,
                                                  self.device)) if rows else None)

    def _feed(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B] -> next logits [B, V], stepping at least min_rows rows."""
        rows = len(tokens)
        if rows < self.min_rows:
            tokens = torch.cat([tokens, tokens[:1].expand(self.min_rows - rows)])
        return self.stepper(tokens)[:rows]

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
