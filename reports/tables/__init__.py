"""The paper's tables beyond its ablation figures (Table 3, 6, 7, 8, Appendix B.9, and the supervised baselines of
Table 1, Figure 7 and Table B.3), one module each.

Each module registers its builder with `reports.artefacts.artefact` (same contract as the ablations': `(ours,
published) -> Artefact`); importing this package imports every module in it, so adding a table is one file.
"""
import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_info.name}")
