"""Figures drawn from arrays and run logs (matplotlib, Agg backend): training curves
(:mod:`~vqkit.figures.curves`), image mosaics (:mod:`~vqkit.figures.images`) and mel
spectrograms (:mod:`~vqkit.figures.speech`)."""
