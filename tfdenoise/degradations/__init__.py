"""Degradations drawn on the device: noise models, the JPEG simulation, the practical mix."""
