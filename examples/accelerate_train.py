"""Train MSSMClassifier through Hugging Face Accelerate.

Runs as a plain script (one process), or in several processes under
``torchrun`` or ``accelerate launch`` (distributed data parallel; on a
machine without GPUs the processes are CPU processes talking over gloo)::

    python examples/accelerate_train.py
    torchrun --standalone --nproc_per_node 2 examples/accelerate_train.py
    accelerate launch --multi_gpu --num_machines 1 --num_processes 2 \
        examples/accelerate_train.py   # 2 processes: GPUs, or CPUs without
    accelerate launch --multi_gpu --num_processes 4 examples/accelerate_train.py

(``accelerate launch --cpu`` always starts one process, whatever
``--num_processes`` says.)

The estimator takes an ``accelerate.Accelerator`` as ``accelerator=``; the
accelerator places the model, wraps it for data parallel training and
applies its mixed precision (``--mixed_precision bf16`` on the command line
of ``accelerate launch``). Only the main process prints the held-out ROC AUC
of both Adult tasks.

``--n-samples`` trains on a random subset (the test suite uses a small one);
``--max-epochs`` sets the number of epochs.
"""

from __future__ import annotations

import argparse

import torch
from accelerate import Accelerator
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from mtlestimators import MSSMClassifier
from mtlestimators.datasets import load_adult_multitask


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=None)
    parser.add_argument("--max-epochs", type=int, default=5)
    args = parser.parse_args(argv)

    # Without a GPU, cpu=True: otherwise accelerate ignores the process group
    # that torchrun / accelerate launch set up, and each process would train
    # a model of its own.
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    adult = load_adult_multitask()
    X, Y = adult.data, adult.target
    if args.n_samples is not None and args.n_samples < len(X):
        X = X.sample(n=args.n_samples, random_state=0)
        Y = Y.loc[X.index]
    X_train, X_test, Y_train, Y_test = train_test_split(
        X, Y, test_size=0.25, random_state=0
    )
    model = MSSMClassifier(
        max_epochs=args.max_epochs,
        batch_size=256,
        random_state=0,  # the same seed in every process: the same shuffles
        verbose=int(accelerator.is_main_process),
        accelerator=accelerator,
    )
    model.fit(X_train, Y_train)
    proba = model.predict_proba(X_test)
    scores = {
        task: roc_auc_score(Y_test[task], proba[:, k])
        for k, task in enumerate(Y.columns)
    }
    if accelerator.is_main_process:
        print(
            f"device: {accelerator.device}, processes: {accelerator.num_processes}, "
            f"rows per process and batch: {model.batch_size}"
        )
        for task, auc in scores.items():
            print(f"held-out ROC AUC {task}: {auc:.3f}")
    return scores


if __name__ == "__main__":
    main()
