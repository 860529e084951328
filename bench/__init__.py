"""``make bench``: how fast the engine trains, side by side with what a user would otherwise run.

Four parts, one run (``python -m bench``; ``--quick`` for a smoke run), written to
``bench/results.md`` and ``bench/results.json`` with the machine they ran on:

1. vectorized engine vs a plain per-model PyTorch loop (MNIST-1D ``mlp``, digits ``cnn``);
2. 5-fold cross-validation of an MLP on digits vs scikit-learn's ``cross_validate``;
3. achieved training FLOP/s of the engine vs a large float32 matmul on the same machine;
4. memorization scores of every MNIST-1D training example from 512 subset models.
"""
