"""Evaluation protocols of SimCLR (Chen et al. 2020) on a trained encoder f(.): images -> h (B, D).

- knn:      weighted kNN vote on frozen features (the CIFAR monitor of Wu et al. 2018)   -> knn_top1/5
- linear:   linear classifier on frozen features, encoder checked bit-identical after   -> linear_top1/5
- finetune: a copy of the encoder + linear head fine-tuned on a class-balanced fraction -> finetune_top1/5
- transform_probe: an MLP on frozen h and g(h) predicts the transformation applied (Table 3)
                                                                      -> transform_<task>_h/gh/random_guess
- transfer: linear evaluation and fine-tuning on another dataset (Table 8)
                                         -> transfer_{linear,finetune}_{top1,mean_per_class_acc}

Every protocol takes uint8 images (N, C, H, W), integer labels (the transformation probe makes its own)
and the normalisation mean/std, checks its arguments (ConfigError) before any compute, runs on the
encoder's device (or ``device``), and reports accuracy in percent.
"""
from simclr_core.evaluate.features import extract_features, labelled_features
from simclr_core.evaluate.finetune import balanced_subset, finetune_eval
from simclr_core.evaluate.knn import knn_classify, knn_eval
from simclr_core.evaluate.linear import linear_eval
from simclr_core.evaluate.transform_probe import transform_probe_eval

__all__ = ["balanced_subset", "extract_features", "finetune_eval", "knn_classify", "knn_eval", "labelled_features",
           "linear_eval", "transform_probe_eval"]
