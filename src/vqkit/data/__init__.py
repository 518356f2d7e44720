"""Datasets: CIFAR-10 images and L2-ARCTIC-style speech."""
