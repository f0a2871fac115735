"""Training-time augmentations inside the jitted step, with explicit keys.

    spec.py       time roll, SpecAugment masks, mixup (draws separate from their application)
    translate.py  device-A examples replaced by a frozen device translator's output
"""
