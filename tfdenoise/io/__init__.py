"""Files on disk: listing and probing images, one picture with its metadata, TFRecords."""
