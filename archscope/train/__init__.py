"""Train the zoo's models on Fashion-MNIST, data resident on the device."""
from archscope.train.trainer import TrainConfig, TrainResult, resume_config, train

__all__ = ["TrainConfig", "TrainResult", "resume_config", "train"]
