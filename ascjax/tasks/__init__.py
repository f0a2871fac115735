"""Tasks over the engine: what is trained, evaluated, exported or measured, one module each.

    classifier.py      the scene classifier: recipe registries, train_and_evaluate
    translator.py      the device translator: train on (A, X) pairs, evaluate
    teacher_logits.py  a teacher's logits for every training clip (KD)
    evaluate.py        a classifier workdir's results on a split
    export.py          int8 TFLite export, checked against the JAX model
    complexity.py      parameters, DCASE sizes, MACs

Each is also a CLI: `python -m ascjax.tasks.NAME --help`.
"""
