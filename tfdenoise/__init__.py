"""tfdenoise: convolutional image denoisers trained and served with TensorFlow.

Importing the package registers every custom Keras class and function (models, losses,
metrics), so `keras.saving.load_model(path)` in safe mode loads any tfdenoise `.keras` file
after a plain `import tfdenoise` (the bundled model's contract in DESIGN.md).
"""

from tfdenoise import losses, metrics, models  # noqa: F401  (imported for their registrations)

__version__ = "0.1.0"
