import math
from pathlib import Path

import numpy as np
import pytest
from scipy.special import log_softmax, rel_entr, softmax

from harness.errors import ConfigError, HarnessError
from harness.workloads.quality import fidelity
from harness.schema import Node

from quality_fakes import FakeBackend, FakeContext, random_logits

FIXTURE = Path(__file__).parents[1] / "fixtures" / "quality" / "halueval_qa_sample.jsonl"


def numpy_reference(logits, ref_logits, tokens):
    """Straightforward per-position computation with scipy, independent of the module."""
    n = len(tokens) - 1
    kl = sum(rel_entr(softmax(ref_logits[i].astype(np.float64)),
                      softmax(logits[i].astype(np.float64))).sum() for i in range(n))
    top1 = sum(int(np.argmax(logits[i]) == np.argmax(ref_logits[i])) for i in range(n))
    nll = -sum(log_softmax(logits[i].astype(np.float64))[tokens[i + 1]] for i in range(n))
    nll_ref = -sum(log_softmax(ref_logits[i].astype(np.float64))[tokens[i + 1]] for i in range(n))
    return kl / n, top1 / n, math.exp(nll / n - nll_ref / n)


def test_window_stats_match_scipy():
    rng = np.random.default_rng(0)
    v, n = 5000, 21  # crosses several ROW_CHUNK boundaries
    ref = rng.normal(0, 3, (n, v)).astype(np.float32)
    test = (ref + rng.normal(0, 0.7, (n, v))).astype(np.float32)
    tokens = rng.integers(0, v, n).tolist()
    s = fidelity.window_stats(test, ref, tokens)
    got = fidelity.pooled([s])
    kl, top1, ratio = numpy_reference(test, ref, tokens)
    assert s.n == n - 1
    assert got["kl_divergence_mean"] == pytest.approx(kl, rel=1e-9)
    assert got["top1_agreement"] == pytest.approx(top1)
    assert got["perplexity_ratio"] == pytest.approx(ratio, rel=1e-9)
    assert 0 < top1 < 1 and kl > 0


def test_identical_models_are_perfectly_faithful():
    logits = np.random.default_rng(2).normal(size=(9, 50)).astype(np.float32)
    s = fidelity.window_stats(logits, logits.copy(), list(range(9)))
    got = fidelity.pooled([s])
    assert got["kl_divergence_mean"] == pytest.approx(0.0, abs=1e-12)
    assert got["top1_agreement"] == 1.0 and got["perplexity_ratio"] == pytest.approx(1.0)


def test_pooling_is_token_weighted():
    a = fidelity.WindowStats(n=10, kl_sum=1.0, top1_agree=10, nll_sum=20.0, nll_ref_sum=10.0)
    b = fidelity.WindowStats(n=30, kl_sum=9.0, top1_agree=15, nll_sum=30.0, nll_ref_sum=30.0)
    got = fidelity.pooled([a, b])
    assert got["kl_divergence_mean"] == pytest.approx(10 / 40)
    assert got["top1_agreement"] == pytest.approx(25 / 40)
    assert got["perplexity_ratio"] == pytest.approx(math.exp(50 / 40 - 40 / 40))


def test_vocabulary_mismatch_is_an_error():
    with pytest.raises(HarnessError, match="same model"):
        fidelity.window_stats(np.zeros((3, 10)), np.zeros((3, 12)), [0, 1, 2])


def test_config():
    node = Node({"name": "f", "kind": "fidelity", "reference_level": "Q8_0", "window_tokens": 32},
                "m.yaml", "workloads[2]")
    c = fidelity.Config.from_node(node)
    assert (c.reference_level, c.window_tokens, c.samples, c.needs_logits) == ("Q8_0", 32, 16, True)
    with pytest.raises(ConfigError, match="missing required key 'reference_level'"):
        fidelity.Config.from_node(Node({"name": "f", "kind": "fidelity"}, "m.yaml", "w"))
    with pytest.raises(ConfigError, match="must be >= 8"):
        fidelity.Config.from_node(Node({"name": "f", "kind": "fidelity", "reference_level": "F16",
                                        "window_tokens": 2}, "m.yaml", "w"))


def test_run_against_a_perturbed_reference():
    def noisy(prefix):
        return random_logits(prefix) + np.random.default_rng(len(prefix)).normal(0, 1.0, 64).astype(np.float32)
    test, ref = FakeBackend(logit_fn=noisy), FakeBackend()
    ctx = FakeContext(reference=ref)
    cfg = fidelity.Config(name="f", samples=4, seed=1, reference_level="F16", window_tokens=16,
                          file=str(FIXTURE))
    res = fidelity.run(test, cfg, ctx)
    assert ctx.opened == 1 and ref.unloaded
    # recompute independently from the same windows
    windows = [test.tokenize(p["text"], add_bos=True)[:16]
               for _, p in fidelity.select(fidelity.passages(str(FIXTURE)), 4, 1, "")]
    kls, tops, nll, nll_ref, n = [], [], 0.0, 0.0, 0
    for t in windows:
        lt, lr = test.logits(t), ref.logits(t)
        kl, top1, _ = numpy_reference(lt, lr, t)
        kls.append(kl * (len(t) - 1))
        tops.append(top1 * (len(t) - 1))
        nll -= sum(log_softmax(lt[i].astype(np.float64))[t[i + 1]] for i in range(len(t) - 1))
        nll_ref -= sum(log_softmax(lr[i].astype(np.float64))[t[i + 1]] for i in range(len(t) - 1))
        n += len(t) - 1
    m = res.metrics
    assert m["n_items"] == 4 and m["n_tokens"] == n == 4 * 15
    assert m["kl_divergence_mean"] == pytest.approx(sum(kls) / n, rel=1e-9)
    assert m["top1_agreement"] == pytest.approx(sum(tops) / n)
    assert m["perplexity_ratio"] == pytest.approx(math.exp((nll - nll_ref) / n), rel=1e-9)
    assert m["kl_divergence_mean_ci95_low"] <= m["kl_divergence_mean"] <= m["kl_divergence_mean_ci95_high"]
    assert len(res.samples) == 4 and {"id", "text", "kl_divergence"} <= set(res.samples[0])


def test_reference_is_unloaded_even_on_error():
    class Broken(FakeBackend):
        def tokenize(self, text, add_bos=False):
            return [0, 1, 2]
    ref = Broken()
    cfg = fidelity.Config(name="f", samples=2, seed=0, reference_level="F16", window_tokens=16,
                          file=str(FIXTURE))
    with pytest.raises(HarnessError, match="tokenizes text differently"):
        fidelity.run(FakeBackend(), cfg, FakeContext(reference=ref))
    assert ref.unloaded
