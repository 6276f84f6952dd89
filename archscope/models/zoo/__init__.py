"""The zoo: D2L's modern CNNs, one file per architecture; importing them registers them."""
from archscope.models.zoo import alexnet, densenet, googlenet, lenet, nin, resnet, vgg  # noqa: F401
