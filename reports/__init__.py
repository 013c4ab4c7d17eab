"""Reports: the long-form results table (registry.store.load_results) becomes each of the paper's tables and
figures, beside the published one, with rank agreement and the paper's conclusions checked.

    python -m registry report [ARTEFACT ...] [--scale S] [--out DIR]      (or python -m reports ...)

published.py  the paper's numbers as data (how each was read, with its uncertainty)
compare.py    ours (mean ± std over seeds) joined with the paper's; Spearman, Kendall; conclusions
artefacts.py  one function per paper artefact, registered in ARTEFACTS
build.py      sections: artefact x scale, with progress, deviations and sources
render.py     HTML (self-contained), Markdown and CSV;  style.py: the figures' look
"""
