"""SimCLR v1, Table 8: transfer of the pretrained encoder to 12 natural-image datasets, linear and fine-tuned.

Paper: Chen et al. 2020, arXiv:2002.05709 v3, Section 4.3 (Table 8) and Appendix B.8 (protocol; Table B.5 is the
same table for ResNet-50 1x).
Claim (Sec. 4.3, paraphrased): fine-tuned, the self-supervised model is significantly better than the supervised
baseline on 5 datasets, worse on only 2 (Pets and Flowers), and statistically tied on the other 5. In the printed
numbers, fine-tuning beats linear evaluation on 11 of the 12 datasets (not on DTD), and with a frozen encoder
SimCLR is ahead of the supervised baseline on 5 of 12.
Published numbers: table8_transfer.csv, rows of "Table 8" (ResNet-50 (4x), 1000 epochs on ImageNet), printed
(exact). The metric of each cell is the one the paper prints for that dataset: top-1 accuracy, or mean per-class
accuracy for Aircraft, Pets, Caltech-101 and Flowers; our runs report both. The supervised rows are read by the
report (reports/tables/tab8.py) for the paper's side of its claims; there is no supervised run of ours.

One axis, the transfer dataset (eval.transfer_dataset), in the paper's column order without VOC2007. It changes only
evaluation keys, so all eleven points share one pretraining (registry/pretraining.py); each point runs the
transfer protocol (simclr_core/evaluate/transfer.py), both its linear and its fine-tuned variant. A dataset whose
files cannot be found fails its run before any pretraining step, naming where it looked and how to provide it
(CIFAR-10/100: $SIMCLR_DATA_DIR/cifar10 and /cifar100 parquet files; the others: their Hub ids, or a local folder).
"""
from registry import Experiment, Published, grid

# Our catalog name (simclr_core/data/catalog.py) -> the paper's column, in the paper's order.
DATASETS = {
    "food101": "Food",
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
    "birdsnap": "Birdsnap",
    "sun397": "SUN397",
    "stanford_cars": "Cars",
    "fgvc_aircraft": "Aircraft",
    "dtd": "DTD",
    "oxford_pets": "Pets",
    "caltech101": "Caltech-101",
    "flowers102": "Flowers",
}
# Our metric -> the protocol column of its published rows.
METRICS = {
    "transfer_linear_top1": "linear",
    "transfer_linear_mean_per_class_acc": "linear",
    "transfer_finetune_top1": "fine-tuned",
    "transfer_finetune_mean_per_class_acc": "fine-tuned",
}

DEVIATIONS = (
    "smoke/cpu/gpu scales pretrain on CIFAR-10 (Appendix B.9's setting) with a small ResNet-18, not on ImageNet "
    "with ResNet-50 (4x): CIFAR-10 is then in-domain (pretraining and transfer both read CIFAR-10's training "
    "images) and CIFAR-100 near-domain, so those two cells do not measure transfer",
    "the 1000 epochs and the 4x width are paper units: each scale multiplies them by its factors (cpu: 30 epochs, "
    "width 1; gpu: 1000 epochs, width 4; smoke: 2 steps, width 1)",
    "VOC2007 is left out: Table 8 reports its 11-point mAP, a multi-label metric the transfer protocol does not "
    "compute (eval.transfer_dataset='voc2007' is refused)",
    "the transfer images are decoded at the run's image size (32 px at the CIFAR scales, 224 px at paper scale; "
    "photos resized to 8/7 of it, then centre-cropped) and normalised with the pretraining statistics; the paper "
    "evaluates at 224 px (linear: shorter side 224, centre crop; fine-tuning tests at resize 256, crop 224)",
    "no hyperparameter search: the linear classifier trains with SGD and the eval.linear_* settings (the paper: "
    "L-BFGS on l2-regularised logistic regression, the regularisation picked on a validation split), fine-tuning "
    "uses eval.finetune_* (the paper: 20,000 steps at batch 256, learning rate and weight decay picked from grids)",
    "each dataset's train split trains and its test split is reported (Food-101's Hub copy calls it 'validation'); "
    "the paper picks hyperparameters on a validation split and then trains on train + validation",
    "smoke/cpu scales limit the transfer splits like the pretraining data (data.train_limit / data.test_limit: "
    "512 / 200 images at smoke, 10,000 / 2,000 at cpu, capped at each split's size)",
    "Birdsnap, Aircraft and Caltech-101 have no Hub id in the data catalog: they need local files "
    "($SIMCLR_DATA_DIR/<name> or eval.transfer_data_dir); the other Hub ids are public copies chosen by their "
    "description, not checked against the paper's splits",
)


def transfer_experiment(name: str, artefact: str, title: str, table: str, width: float,
                        deviations: tuple[str, ...]) -> Experiment:
    """A transfer table's SimCLR rows: a ResNet-50 of `width` (paper units) pretrained for 1000 epochs, transferred
    to each dataset (one shared pretraining), read against the CSV's rows of `table`."""
    return Experiment(
        name=name,
        artefact=artefact,
        title=title,
        base={"optim.lr_scaling": "linear", "encoder.width": width, "epochs": 1000.0},
        axes=grid(eval__transfer_dataset=tuple(DATASETS)),
        metric="transfer_linear_top1",
        metrics=tuple(m for m in METRICS if m != "transfer_linear_top1"),
        published=Published(
            "table8_transfer.csv",
            columns={"transfer_dataset": "eval.transfer_dataset"},
            values={"eval.transfer_dataset": DATASETS},
            where={"table_or_figure": table},
            metrics={metric: {"protocol": protocol, "method": "SimCLR (ours)", "metric": metric}
                     for metric, protocol in METRICS.items()}),
        deviations=deviations,
    )


# Table 8's encoder: ResNet-50 (4x) pretrained for 1000 epochs (Sec. 4.3), in paper units.
EXPERIMENT = transfer_experiment("table8_transfer", "tab8", "Table 8: transfer to 11 natural-image datasets, linear "
                                 "evaluation and fine-tuning", "Table 8", 4.0, DEVIATIONS)
