"""The bundled pretrained denoiser (denoiser.keras) and its provenance (denoiser.json)."""
