"""Named settings from the literature, each returning `(Config, Params)`."""

from __future__ import annotations

from jaxprune.config import Config, Params


def yang2023() -> tuple[Config, Params]:
    """The setting of Yang et al. (2023), "Theoretical Characterization of How Neural Network
    Pruning Affects its Generalization": orthogonal 1-sparse class signals mu_k = mu_norm e_k,
    noise patches N(0, sigma^2 I) orthogonal to the signals, a two-layer ReLU CNN with the
    second layer fixed to 1/m, Gaussian init, a Bernoulli mask drawn at initialization and
    full-batch GD on cross-entropy; at a size that trains in about a second on a CPU."""
    return Config(), Params()


def kou2023(dim: int = 600, mu_norm: float = 5.0) -> tuple[Config, Params]:
    """The model of Kou, Chen, Chen, Gu, "Benign Overfitting in Two-layer ReLU Convolutional
    Neural Networks" (ICML 2023), as their public experiment code trains it.

    Binary labels with an antipodal signal patch +-bmu e_1 (here +-mu_norm e_0); noise N(0, 1)
    per coordinate, not orthogonalized; two patches in random order; 10% of labels flipped in
    training and test sets alike; a Conv1d with kernel = stride = d, with bias and PyTorch's
    default init (weights and bias U(+-1/sqrt(d))); ReLU; mean over the two patches; sum over
    the m = 10 filters of each class; cross-entropy; full-batch GD with lr 0.1 for 100 steps;
    n = 20 training and 1000 test samples. Their figure sweeps dim = 100, 110, ..., 1090 and
    mu_norm = 0, 0.1, ..., 9.9, with 10 repeats per cell. Logged at the start and the end only
    (their figure uses the final test error).
    """
    config = Config(
        num_classes=2,
        num_patches=2,
        dim=dim,
        width=10,
        n_train=20,
        n_test=1000,
        steps=100,
        log_every=100,
        activation="relu",
        signal="antipodal",
        noise_orthogonal=False,
        layout="patches",
        bias=True,
        init="uniform_fan_in",
        output_scale="sum",
        patch_reduce="mean",
        mask="bernoulli",
        loss_tol=None,
    )
    params = Params(
        prune_frac=0.0, mu_norm=mu_norm, sigma_noise=1.0, sigma_init=0.0, lr=0.1, label_flip=0.1
    )
    return config, params
