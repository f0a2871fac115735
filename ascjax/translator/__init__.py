"""Device translation: a FiLM-conditioned U-Net that maps one device's log-mels to another's."""
