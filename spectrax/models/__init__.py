"""spectrax.models"""
__all__: list[str] = []
