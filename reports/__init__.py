"""Reports: the long-form results table (registry.store.load_results) becomes each of the paper's tables and
figures, beside the published one, with rank agreement and the paper's conclusions checked.

    python -m registry report [ARTEFACT ...] [--scale S] [--out DIR]      (or python -m reports ...)

published.py   the paper's numbers as data (how each was read, with its uncertainty)
variants.py    which runs may be averaged: one config per experiment and scale, the others left out with why
what_ran.py    what the shown runs were, from their configs and final.json (data, model, epochs, device-hours)
compare.py     ours (mean ± std over seeds) joined with the paper's; rank agreement
ranks.py       Spearman and Kendall tau-b;  bootstrap.py: their interval over our seeds
noise.py       the rule for "within noise";  claims.py: the paper's conclusions as margins, judged by it
references.py  what the paper's numbers are to our runs: the paper's setting, an ImageNet trend, CIFAR-10
artefacts.py   one function per paper artefact, registered in ARTEFACTS
build.py       sections: artefact x scale, with progress, deviations and sources
render.py      HTML (self-contained), Markdown and CSV;  style.py: the figures' look
"""
