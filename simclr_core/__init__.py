"""SimCLR's method: augmentations, encoders, heads, losses, LARS, global BN, the training loop, evaluation."""
from simclr_core.heap import keep_freed_memory
from simclr_core.hugepages import request_huge_pages

request_huge_pages()   # before anything imports torch: see hugepages.py
keep_freed_memory()    # freed CPU tensors stay mapped for the next step: see simclr_core/heap.py
