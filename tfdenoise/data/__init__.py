"""tf.data input pipelines and the sources they read (folders, TFRecords, sample photos)."""
