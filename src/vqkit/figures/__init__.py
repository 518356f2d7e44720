"""Figures drawn from arrays and run logs, never from a model (matplotlib, Agg backend):
training curves (:mod:`~vqkit.figures.curves`), image mosaics (:mod:`~vqkit.figures.images`),
mel spectrograms (:mod:`~vqkit.figures.speech`), and the report's figures in a light and a dark
theme (:mod:`~vqkit.figures.report`, :mod:`~vqkit.figures.themes`)."""
