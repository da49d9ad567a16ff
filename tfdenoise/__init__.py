"""tfdenoise: convolutional image denoisers trained and served with TensorFlow."""

__version__ = "0.1.0"
