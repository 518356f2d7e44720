"""What the codes know: linear probes on a run's codes against raw inputs."""

from vqkit.probing.linear import fit_linear_probe, image_features, probe_run

__all__ = ["fit_linear_probe", "image_features", "probe_run"]
