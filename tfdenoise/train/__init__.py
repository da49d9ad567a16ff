"""Training: `fit(config)` in named stages, its callbacks, tf.distribute and tf.data service."""
