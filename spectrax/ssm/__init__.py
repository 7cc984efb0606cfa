"""spectrax.ssm"""
__all__: list[str] = []
