"""skillvet: train LLM agents with GiGPO in multi-turn text environments, and grow a bank of
skills that are admitted only after their marginal utility has been measured."""

__version__ = "0.1.0"
