"""Training pipeline for product-classifier's Fashion-MNIST models.

Modules: data (official split, checksums, stratified validation), nets (the
CNN families), augment, train (loop, checkpoints, CLI), calibration
(temperature scaling, ECE), metrics (evaluation report, reference
distributions), export (ONNX, TF.js Layers, manifest).
"""
