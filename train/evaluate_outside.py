"""Test-set numbers of a model written elsewhere: what means something without knowing its likelihood
(reconstruction error, KL per dimension, active units), and the ELBO and IWAE bound where its decoder is Bernoulli."""

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from models.loss import kl_per_dimension
from models.outside import OutsideVAE
from train.evaluate import Evaluation, dimension_rows, eval_batch, evaluate_model

BERNOULLI_OUTPUTS = ("probs", "logits")  # decoders whose output is a Bernoulli's parameter: a likelihood is known


@dataclass
class OutsideEvaluation:
    """What `vae-tui eval --code` reports; squared errors are of pixels in [0, 1], reconstructions decoded from mu."""

    images: int
    decoder_output: str
    squared_error: dict[str, float]  # per_pixel (the MSE) and per_image (summed over C*H*W), z = mu
    kl: float  # nats per image, summed over the dimensions
    kl_from_logvar: bool  # False: the encoder gives mu alone, and the KL is that of unit variances
    per_class: list[dict]  # class, name, images, squared_error (per image)
    active_units: int
    dimensions: list[dict]  # dim, variance of mu, mean KL, active
    likelihood: Evaluation | None  # -ELBO and the IWAE bound: Bernoulli decoders (probs, logits) alone

    def to_dict(self) -> dict:
        """JSON-able form."""
        return asdict(self)


@torch.no_grad()
def evaluate_outside(
    model: OutsideVAE,
    x: torch.Tensor,
    y: torch.Tensor,
    class_names: list[str],
    samples: int,
    seed: int = 0,
    stage: Callable[[str, int], None] = lambda name, images: None,
    on_progress: Callable[[float], None] | None = None,
) -> OutsideEvaluation:
    """Evaluate model on images x (N, C*H*W) in [0, 1] with labels y (N,); stage(name, images) says when each part
    begins, on_progress(images done) how far it is."""
    stage("reconstruction and KL, z = mu", len(x))
    errors, mus, kl_dims = [], [], []
    batch = eval_batch(x.shape[1])
    for start in range(0, len(x), batch):
        xb, yb = x[start : start + batch], y[start : start + batch]
        mu, logvar = model.encode(xb, yb)
        errors.append((torch.sigmoid(model.decode(mu, yb)) - xb).pow(2).sum(1))
        kl_dims.append(kl_per_dimension(mu, logvar))
        mus.append(mu)
        if on_progress is not None:
            on_progress(start + len(xb))
    per_image, mus, kl_dims = torch.cat(errors), torch.cat(mus), torch.cat(kl_dims)
    variances = mus.var(0) if len(mus) > 1 else torch.zeros(mus.shape[1])
    dimensions = dimension_rows(variances, kl_dims)
    likelihood = None
    if model.decoder_output in BERNOULLI_OUTPUTS and model.has_logvar:  # q(z|x) known: a bound of the model's own
        stage(f"-ELBO and IWAE, K={samples}", len(x))
        likelihood = evaluate_model(model, x, y, class_names, samples, seed, on_progress=on_progress)
    return OutsideEvaluation(
        images=len(x),
        decoder_output=model.decoder_output,
        squared_error={"per_pixel": per_image.mean().item() / x.shape[1], "per_image": per_image.mean().item()},
        kl=kl_dims.sum(1).mean().item(),
        kl_from_logvar=model.has_logvar,
        per_class=[
            {"class": c, "name": name, "images": int((y == c).sum()), "squared_error": per_image[y == c].mean().item()}
            for c, name in enumerate(class_names)
            if (y == c).any()
        ],
        active_units=sum(d["active"] for d in dimensions),
        dimensions=dimensions,
        likelihood=likelihood,
    )
