"""Models: the built-in families and the user's own ``nn.Module`` factories."""

from rotelab.models.zoo import BUILDERS, DEFAULTS, MODELS, ModelSpec, build_model, check_model_spec

__all__ = ["BUILDERS", "DEFAULTS", "MODELS", "ModelSpec", "build_model", "check_model_spec"]
