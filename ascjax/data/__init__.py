"""Data: the TAU layout, audio reading, the TFDS builder, the synthetic set and the tf.data pipeline."""
