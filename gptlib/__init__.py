"""gptlib: the finished, tested pieces of GPT-2 that the book builds step by step.

    from gptlib import GPT, GPTConfig, gpt2_tokenizer

Modules follow the book's order: config, tokenizer, attention, layers, model, ablation,
trace, dataset, checkpoint, recipes, trainer, interrupt, train, generate, sampling,
weights, pretrained, interpret, circuits, export; and exercises, one module per chapter. Two modules go past
GPT-2: rope (rotary positions) and llama (Hugging Face Llama checkpoints).
"""

from .config import PRESETS, GPTConfig
from .model import GPT
from .tokenizer import CharTokenizer, gpt2_tokenizer

__all__ = ["GPT", "GPTConfig", "PRESETS", "CharTokenizer", "gpt2_tokenizer"]
__version__ = "0.1.0"
