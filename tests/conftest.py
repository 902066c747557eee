import pathlib

import pytest
import torch

from gptlib import GPT, GPTConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_config() -> GPTConfig:
    return GPTConfig.from_preset("tiny")


@pytest.fixture
def tiny_model(tiny_config) -> GPT:
    torch.manual_seed(0)
    return GPT(tiny_config).eval()
