"""Beam search: keep the `width` most probable partial sequences of each prompt.

All prompts x width beams run as one batch of N = B*W rows. Each step scores every
(beam, next token) pair by the beam's summed log-probability, keeps the best 2W per
prompt, sets aside those that end (<eos>, or a completed stop string) as finished
hypotheses, and carries the best W that did not end, reordering the recurrent state to
follow them. A hypothesis scores sum(log p) / length ** length_penalty (0: raw sum,
which favours short sequences; 1: mean log-prob per token). A prompt's search stops when
W hypotheses have finished and no live beam could still beat the worst of them, or at
max_new_tokens, when live beams count as hypotheses too.
"""
from __future__ import annotations

import torch

from seqgen import GenerationError, Hypothesis, Strategy, select_batch

# |length_penalty| at most this: length ** 10 stays a finite float for any length a
# generation can reach, where length ** -1e308 is 0.0 and the score a division by zero.
MAX_LENGTH_PENALTY = 10


class BeamSearch(Strategy):
    def __init__(self, width: int = 4, length_penalty: float = 1.0):
        self.width = int(width)
        self.length_penalty = float(length_penalty)

    def choose(self, logits, generator=None):
        """One step alone (as a trainer would use it) is greedy."""
        return logits.argmax(dim=-1)

    def describe(self):
        return f"beam(width={self.width}, length_penalty={self.length_penalty:g})"

    def score(self, total: float, length: int) -> float:
        return total / length ** self.length_penalty

    def search(self, d):
        B, V = d.logits.shape
        W = self.width
        if d.num_samples > W:
            raise GenerationError(f"beam search of width {W} finds {W} sequences per prompt; "
                                  f"num_samples={d.num_samples} asks for more (raise width)")
        if self.length_penalty != 1.0 and not d.can_end:
            d.warn("length_penalty has no effect: nothing can end a sequence early (the "
                   "vocabulary has no <eos> and no stop strings were given), so every "
                   "hypothesis has the same length")
        if d.max_new_tokens == 0:
            return [[Hypothesis([], [], 0.0)] * d.num_samples for _ in range(B)]
        device = d.logits.device
        k = min(2 * W, W * V)                       # candidates kept per prompt per step
        logits = d.logits.repeat_interleave(W, 0)   # [N, V]: each prompt's W beams
        sums = torch.full((B, W), float("-inf"), device=device)
        sums[:, 0] = 0.0                            # one live beam to start: no duplicates
        seqs = torch.empty(B * W, 0, dtype=torch.long, device=device)   # [N, t]
        lps = torch.empty(B * W, 0, device=device)                      # [N, t]
        state = select_batch(d.state, torch.arange(B, device=device).repeat_interleave(W))
        finished: list[list[Hypothesis]] = [[] for _ in range(B)]
        searching = [True] * B
        first = (torch.arange(B, device=device) * W)[:, None]                # [B, 1]
        for t in range(d.max_new_tokens):
            logp = logits.float().log_softmax(-1)                                # [N, V]
            total, flat = (sums.view(-1, 1) + logp).view(B, W * V).topk(k, -1)  # [B, k]
            parent = (first + flat // V).view(-1)                                # [B*k]
            token = (flat % V).view(-1)                                          # [B*k]
            cand_seqs = torch.cat([seqs[parent], token[:, None]], 1)             # [B*k, t+1]
            cand_lps = torch.cat([lps[parent], logp[parent, token][:, None]], 1)
            live = total > float("-inf")                                         # [B, k]
            ended = d.ended(cand_seqs).view(B, k) & live
            for b, j in (ended[:, :W]).nonzero().tolist():    # endings that rank in the top W
                if searching[b]:
                    row = b * k + j
                    finished[b].append(Hypothesis(cand_seqs[row].tolist(),
                                                  cand_lps[row].tolist(),
                                                  self.score(float(total[b, j]), t + 1)))
            # The best W candidates that did not end carry on (stable: by rank).
            rank = torch.arange(k, device=device).expand(B, k)
            pick = (rank + k * (ended | ~live)).argsort(-1)[:, :W]               # [B, W]
            rows = (torch.arange(B, device=device)[:, None] * k + pick).view(-1)  # [N]
            seqs, lps = cand_seqs[rows], cand_lps[rows]
            sums = total.gather(1, pick).masked_fill((ended | ~live).gather(1, pick),
                                                     float("-inf"))
            for b in range(B):
                if searching[b] and self.settled(finished[b], float(sums[b, 0]), t + 1,
                                                 d.max_new_tokens, W):
                    searching[b] = False
            if not any(searching):
                break
            if t + 1 < d.max_new_tokens:
                state = select_batch(state, parent[rows])
                logits, state = d.step(seqs[:, -1], state)
        length = seqs.shape[1]
        for b in range(B):              # at max_new_tokens: live beams are hypotheses too
            for w in range(W):
                if searching[b] and sums[b, w] > float("-inf"):
                    finished[b].append(Hypothesis(seqs[b * W + w].tolist(),
                                                  lps[b * W + w].tolist(),
                                                  self.score(float(sums[b, w]), length)))
        if min(map(len, finished)) < d.num_samples:
            raise GenerationError(f"beam search found only {min(map(len, finished))} "
                                  f"sequences for a prompt; num_samples={d.num_samples} asks "
                                  f"for more (allow more new tokens)")
        return [sorted(f, key=lambda h: h.score, reverse=True)[:d.num_samples]
                for f in finished]

    def settled(self, finished: list[Hypothesis], best_live: float, length: int,
                max_length: int, width: int) -> bool:
        """Could no live beam still beat the width-th best finished hypothesis?

        A live beam's sum can only fall; with length_penalty > 0 its score is best if it
        ends as long as allowed, otherwise if it ends now."""
        if best_live == float("-inf"):               # every beam has ended
            return True
        if len(finished) < width:
            return False
        worst = sorted(h.score for h in finished)[-width]
        bound = best_live / (max_length if self.length_penalty > 0 else length) \
            ** self.length_penalty
        return bound <= worst
