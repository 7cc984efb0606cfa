"""spectrax.train"""
__all__: list[str] = []
