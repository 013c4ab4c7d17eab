"""SimCLR's method: augmentations, encoders, heads, losses, LARS, global BN, the training loop, evaluation."""
from simclr_core.hugepages import request_huge_pages

request_huge_pages()   # before anything imports torch: see hugepages.py
