"""The real-training test's driver: upstream's SFT trainer on the tiny local model and data set, as a user would run it.

tests/areal/test_training.py runs it as the job's driver (`driver.upstream: areal`, so agent.pyz's run-trainer has
SFTTrainer use the planned scheduler): read the SFT config with upstream's load_expr_config, load the tokenizer and
the train and test splits through upstream's get_custom_dataset, and train with SFTTrainer. Nothing else."""
from __future__ import annotations

import sys

from areal import SFTTrainer
from areal.api.cli_args import SFTConfig, load_expr_config
from areal.dataset import get_custom_dataset
from areal.utils.hf_utils import load_hf_tokenizer


def main(argv: list[str]) -> None:
    config, _ = load_expr_config(argv, SFTConfig)
    tokenizer = load_hf_tokenizer(config.tokenizer_path)
    splits = {split: get_custom_dataset(split=split, dataset_config=dataset, tokenizer=tokenizer)
              for split, dataset in (("train", config.train_dataset), ("test", config.valid_dataset))}
    with SFTTrainer(config, train_dataset=splits["train"], valid_dataset=splits["test"]) as trainer:
        trainer.train()


main(sys.argv[1:])
