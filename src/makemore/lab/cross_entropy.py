"""`cross-entropy`: the naive softmax-then-log overflows where the fused, max-subtracted one does not.

Karpathy's "Building makemore Part 2" and "Part 4: Becoming a Backprop Ninja": computing
`counts = logits.exp(); probs = counts / counts.sum(1); -probs[y].log().mean()` overflows once
a logit passes ~88 in float32 (exp gives inf, inf / inf gives nan), while `F.cross_entropy`
subtracts the largest logit first and has an analytical backward. This experiment runs the
teaching version (`makemore.functional.cross_entropy_naive`), ours
(`makemore.functional.cross_entropy`) and PyTorch's on the same logits at growing scales, then
times forward + backward of each.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..functional import cross_entropy, cross_entropy_naive
from .common import Experiment, Lab, Outcome, Table, median_ms, new_figure

SCALES = (1, 10, 100, 1000, 10000)
IMPLS = {"naive": cross_entropy_naive, "makemore": cross_entropy, "torch": F.cross_entropy}


def loss_and_grad(fn, logits: torch.Tensor, targets: torch.Tensor) -> tuple[float, bool]:  # type: ignore[no-untyped-def]
    """The loss value and whether its gradient w.r.t. the logits is all finite."""
    x = logits.clone().requires_grad_(True)
    loss = fn(x, targets)
    loss.backward()
    return loss.item(), bool(torch.isfinite(x.grad).all())


def run(lab: Lab) -> Outcome:
    V = lab.dataset.vocab.size
    gen = torch.Generator().manual_seed(lab.seed)
    N = 512
    base = torch.randn(N, V, generator=gen)  # (N, V) float32, as in training
    targets = torch.randint(V, (N,), generator=gen)
    stab = Table(
        f"loss at growing logit scales (float32, {N} rows x {V} classes, logits = scale * randn)",
        ["scale", "naive", "makemore", "torch", "naive finite", "makemore finite", "makemore grad finite",
         "|makemore - torch|"],
    )
    for s in SCALES:
        logits = base * s
        naive, _ = loss_and_grad(cross_entropy_naive, logits, targets)
        ours, ours_grad_ok = loss_and_grad(cross_entropy, logits, targets)
        ref, _ = loss_and_grad(F.cross_entropy, logits, targets)
        stab.add(s, naive, ours, ref, math.isfinite(naive), math.isfinite(ours), ours_grad_ok, abs(ours - ref))

    shapes = [(N, V), (8192, V), (4096, 1024)] + ([] if lab.quick else [(4096, 8192)])
    speed = Table("forward + backward time, float32 on the CPU (ms, median)",
                  ["rows", "classes", "naive ms", "makemore ms", "torch ms", "makemore/torch"])
    for n, v in shapes:
        logits = torch.randn(n, v, generator=gen).requires_grad_(True)
        y = torch.randint(v, (n,), generator=gen)
        ms = {}
        for name, fn in IMPLS.items():
            def step(fn=fn) -> None:  # type: ignore[no-untyped-def]
                logits.grad = None
                fn(logits, y).backward()
            ms[name] = median_ms(step, lab.steps)
        speed.add(n, v, ms["naive"], ms["makemore"], ms["torch"], ms["makemore"] / ms["torch"])
        lab.say(f"  ({n}, {v}): " + ", ".join(f"{k} {t:.3f} ms" for k, t in ms.items()))

    fig, axes = new_figure(1, 2, width=5.0)
    for name, style in zip(IMPLS, ({"marker": "o", "ms": 10}, {"marker": "s", "ls": "--"}, {"marker": "x", "ls": ":"})):
        vals = [v if math.isfinite(v) else float("nan") for v in stab.column(name)]  # nan: not drawn
        axes[0].plot(SCALES, vals, label=name, **style)
    broken = [s for s, ok in zip(SCALES, stab.column("naive finite")) if not ok]
    for s in broken:
        axes[0].axvline(s, color="red", alpha=0.2, lw=8)
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("logit scale")
    axes[0].set_ylabel("loss")
    axes[0].set_title("naive turns inf/nan (red) where fused stays finite")
    axes[0].legend()
    labels = [f"{r[0]}x{r[1]}" for r in speed.rows]
    for k, name in enumerate(IMPLS):
        axes[1].bar([i + (k - 1) * 0.27 for i in range(len(labels))], speed.column(f"{name} ms"), width=0.27, label=name)
    axes[1].set_xticks(range(len(labels)), labels, fontsize=8)
    axes[1].set_yscale("log")
    axes[1].set_ylabel("forward + backward, ms")
    axes[1].legend()

    first_bad = broken[0] if broken else None
    notes = [f"The naive chain first fails at logit scale {first_bad:g}: loss {stab.rows[SCALES.index(first_bad)][1]}."
             if first_bad else "The naive chain stayed finite at every scale tried.",
             f"The fused cross-entropy stays finite up to scale {SCALES[-1]:g} and agrees with PyTorch to "
             f"{max(stab.column('|makemore - torch|')):.1e} (relative to losses up to {max(stab.column('torch')):.3g})."]
    return Outcome(
        [stab, speed], {"cross_entropy": fig},
        intro="Cross-entropy written as softmax, pick, log, mean overflows in <code>exp</code> once logits are "
              "large; the fused version subtracts the largest logit first (the loss does not change) and "
              "differentiates analytically: (softmax - one_hot) / N.",
        method=[f"Stability: the same {N} x {V} random logits (vocabulary of the corpus) times each scale, in float32.",
                "naive = makemore.functional.cross_entropy_naive (the teaching version), makemore = "
                "makemore.functional.cross_entropy, torch = torch.nn.functional.cross_entropy.",
                f"Speed: median of {lab.steps} forward + backward passes after 2 warm-up passes, "
                f"{torch.get_num_threads()} CPU threads. For the full benchmark see bench/cross_entropy.py."],
        notes=notes,
    )


EXPERIMENT = Experiment(
    "cross-entropy", "Cross-entropy: naive softmax-then-log vs the fused, stable one",
    "naive softmax-then-log vs the fused stable cross-entropy at growing logit scales; their speed",
    run, steps=20, quick_steps=2, steps_means="timing repeats per shape",
)
