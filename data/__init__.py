"""Video data: decoding, sampling/augmentation, official dataset formats, generated data."""
