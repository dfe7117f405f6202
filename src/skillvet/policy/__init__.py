"""Policy models: resolution by name (`models.py`) and the HF-backed policy (`hf.py`)."""
