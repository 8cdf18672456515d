"""The main job: fit the library's models on bundled real data and print scores.

Run with ``mtlestimators demo`` or ``python -m mtlestimators.demo``
(``--quick`` for a shorter run). It fits
:class:`~mtlestimators.MSSMClassifier` (on the raw categorical and numeric
fields) and :class:`~mtlestimators.SharedBottomClassifier` (the same raw
fields) on the UCI Adult data as two tasks (income > 50K, never married),
next to one logistic regression and one HistGradientBoostingClassifier per
task; then
:class:`~mtlestimators.AutoTaskClassifier` and the general branch of
:class:`~mtlestimators.MultiTaskDNNClassifier` on Adult by occupation, with
two occupations held out as unseen tasks; then
:class:`~mtlestimators.GalleryEmbedder` on galleries of MNIST digits, with a
linear probe on its embeddings for a task it never trained on.

It then writes a report (``--report DIR``, default ``demo-report``;
``--no-report`` skips it): ``report.md`` and ``report.html`` with the machine,
the package versions, the same score tables and timings, and PNG figures
(ROC curves, bar charts, MSSM's field masks, a map of the gallery
embeddings) drawn from the predictions already made. The figures need
matplotlib (``pip install "mtlestimators[demo]"``); without it the report
has no figures.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from . import MSSMClassifier, SharedBottomClassifier, per_task_scores
from ._demo_report import (
    Report,
    draw_bars,
    draw_embedding_map,
    draw_field_masks,
    draw_grouped_bars,
    draw_roc_curves,
    machine_rows,
)
from .datasets import load_adult_multitask

DEFAULT_REPORT = "demo-report"
_TASKS = ("income", "never_married")


def adult_preprocessor(categorical, numeric) -> ColumnTransformer:
    """One-hot categorical columns (missing as its own value), z-score numbers."""
    return ColumnTransformer(
        [
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                categorical,
            ),
            ("numeric", StandardScaler(), numeric),
        ]
    )


def _cells(scores: dict) -> list[str]:
    return [f"{scores[t]['roc_auc']:.4f} / {scores[t]['pr_auc']:.4f}" for t in _TASKS]


def _row(model: str, scores: dict, seconds: float) -> str:
    cells = _cells(scores)
    return f"{model:<36} {cells[0]:>17} {cells[1]:>17} {seconds:>8.1f}"


def _gallery_epochs(max_epochs: int) -> int:
    """GalleryEmbedder trains half the epochs, at least 3 (or max_epochs)."""
    return max(min(3, max_epochs), max_epochs // 2)


def _subsample(X, y, max_rows, random_state):
    """At most ``max_rows`` rows of (X, y), drawn at random (all if None)."""
    if max_rows is None or len(X) <= max_rows:
        return X, y
    rows = np.sort(np.random.RandomState(random_state).permutation(len(X))[:max_rows])
    return X.iloc[rows], y.iloc[rows]


def run(
    max_epochs: int = 10,
    verbose: int = 1,
    random_state: int = 0,
    report=None,
    *,
    max_train_rows: int | None = None,
    n_galleries: tuple[int, int] = (400, 200),
) -> dict:
    """Fit and score every model; returns ``{model: per-task scores}``.

    ``report``: a folder to write the report into (None: no report).
    ``max_train_rows`` caps the Adult training rows and ``n_galleries`` sets
    the train and test galleries (smaller values give a faster, rougher run).
    """
    started = time.perf_counter()
    page = Report("mtlestimators demo report")
    page.paragraph(
        f"Settings: max_epochs={max_epochs} "
        f"(GalleryEmbedder: {_gallery_epochs(max_epochs)}), "
        f"random_state={random_state}"
        + (f", at most {max_train_rows} training rows" if max_train_rows else "")
        + ". Scores are on held-out rows; fit times in seconds."
    )
    page.heading("Machine and versions")
    page.table(("item", "value"), machine_rows())

    data = load_adult_multitask()
    X_train, X_test, Y_train, Y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=random_state
    )
    X_train, Y_train = _subsample(X_train, Y_train, max_train_rows, random_state)
    intro = (
        f"UCI Adult, two tasks (income>50K, never-married): {len(X_train)} train "
        f"rows, {len(X_test)} test rows, {data.data.shape[1]} raw features."
    )
    print(intro)
    results, lines, table, curves = {}, [], [], {}
    training = dict(max_epochs=max_epochs, verbose=verbose, random_state=random_state)
    one_hot = adult_preprocessor(data.categorical_features, data.numeric_features)
    multi_task = {
        "MSSMClassifier (raw fields)": MSSMClassifier(**training),
        "SharedBottomClassifier (raw fields)": SharedBottomClassifier(**training),
    }
    for name, model in multi_task.items():
        start = time.perf_counter()
        model.fit(X_train, Y_train)
        seconds = time.perf_counter() - start
        proba = model.predict_proba(X_test)
        results[name] = per_task_scores(Y_test, proba)
        curves[name] = (proba, results[name])
        lines.append(_row(name, results[name], seconds))
        table.append([name, *_cells(results[name]), f"{seconds:.1f}"])

    start = time.perf_counter()
    scores, logreg_proba = {}, []
    for task in Y_train.columns:
        logreg = make_pipeline(clone(one_hot), LogisticRegression(max_iter=2000)).fit(
            X_train, Y_train[task]
        )
        proba = logreg.predict_proba(X_test)
        logreg_proba.append(proba[:, 1])
        scores[task] = per_task_scores(Y_test[task].to_numpy(), proba)["task_0"]
    seconds = time.perf_counter() - start
    results["LogisticRegression per task"] = scores
    curves["LogisticRegression (one per task)"] = (
        np.column_stack(logreg_proba),
        scores,
    )
    lines.append(_row("LogisticRegression (one per task)", scores, seconds))
    table.append(
        ["LogisticRegression (one per task)", *_cells(scores), f"{seconds:.1f}"]
    )

    # The reference a practitioner tries first: one gradient-boosted model per
    # task, at its defaults, on the raw columns (load_adult_multitask gives
    # the categorical ones the category dtype that "from_dtype" reads).
    start = time.perf_counter()
    scores, boosted_proba = {}, []
    for task in Y_train.columns:
        boosted = HistGradientBoostingClassifier(
            categorical_features="from_dtype", random_state=random_state
        ).fit(X_train, Y_train[task])
        proba = boosted.predict_proba(X_test)
        boosted_proba.append(proba[:, 1])
        scores[task] = per_task_scores(Y_test[task].to_numpy(), proba)["task_0"]
    seconds = time.perf_counter() - start
    label = "HistGradientBoosting (one per task)"
    results["HistGradientBoosting per task"] = scores
    curves[label] = (np.column_stack(boosted_proba), scores)
    lines.append(_row(label, scores, seconds))
    table.append([label, *_cells(scores), f"{seconds:.1f}"])

    print()
    print("Held-out ROC AUC / PR AUC")
    print(f"{'model':<36} {'income':>17} {'never_married':>17} {'fit (s)':>8}")
    print("\n".join(lines))

    page.heading("UCI Adult, two tasks (MSSM paper's setting)")
    page.paragraph(intro + " Cells: held-out ROC AUC / PR AUC.")
    page.table(("model", *_TASKS, "fit (s)"), table)
    page.figure(
        "adult_roc.png",
        "ROC curves on the Adult test rows, one panel per task.",
        lambda fig: draw_roc_curves(fig, Y_test.to_numpy(), curves, _TASKS),
        size=(10.0, 5.0),
    )
    mssm = multi_task["MSSMClassifier (raw fields)"]
    if hasattr(mssm, "field_masks_"):
        fields = list(getattr(mssm, "feature_names_in_", range(mssm.n_features_in_)))
        page.figure(
            "mssm_field_masks.png",
            "MSSMClassifier.field_masks_: mean FSCM weight of each field for each "
            "task over the training rows (0: the field never reaches that task's "
            "specific sub-network); beside it, cell_map_: for each connection "
            "(task <- lower sub-network), which cells of the task's "
            "representation its CSSM gates leave open at eval.",
            lambda fig: draw_field_masks(
                fig,
                mssm.field_masks_,
                fields,
                list(mssm.task_names_),
                cell_map=getattr(mssm, "cell_map_", None),
                connections=getattr(mssm, "cell_map_connections_", None),
            ),
            size=(14.0, 3.6),
        )

    sections = [("UCI Adult, two tasks", time.perf_counter() - started)]
    mark = time.perf_counter()
    results.update(
        scenarios(
            max_epochs,
            verbose,
            random_state,
            report=page,
            max_train_rows=max_train_rows,
        )
    )
    sections.append(("UCI Adult by occupation", time.perf_counter() - mark))
    mark = time.perf_counter()
    results.update(
        galleries(
            max_epochs, verbose, random_state, report=page, n_galleries=n_galleries
        )
    )
    sections.append(("MNIST digit galleries", time.perf_counter() - mark))
    sections.append(("total", sum(seconds for _, seconds in sections)))
    page.heading("Timings")
    page.paragraph(
        "Wall time of each part (loading the data, fitting, scoring), seconds; "
        "each model's fit time is in its table above."
    )
    page.table(("part", "seconds"), [(part, f"{s:.1f}") for part, s in sections])
    if report is not None:
        start = time.perf_counter()
        path, written, skipped = page.write(report)
        seconds = time.perf_counter() - start
        print(
            f"\nReport: {path} (and report.html; {len(written)} figures; "
            f"{seconds:.1f} s)"
        )
        if skipped:
            print(skipped)
    return results


def scenarios(
    max_epochs: int,
    verbose: int,
    random_state: int,
    report: Report | None = None,
    max_train_rows: int | None = None,
) -> dict:
    """AutoTask vs the multi-task DNN baseline on Adult by occupation, with
    two occupations never seen in training."""
    from . import AutoTaskClassifier, MultiTaskDNNClassifier
    from .datasets import load_adult_scenarios

    data = load_adult_scenarios(random_state=random_state)
    X_train, y_train = _subsample(
        data.X_train, data.y_train, max_train_rows, random_state
    )
    intro = (
        f"UCI Adult by occupation (AutoTask's multi-scenario setting): "
        f"{len(X_train)} train rows over {len(data.seen_tasks)} "
        f"occupations; {len(data.X_test)} test rows, incl. the unseen "
        f"occupations {data.unseen_tasks}; label income>50K."
    )
    print("\n" + intro)
    training = dict(
        task_column="occupation",
        max_epochs=max_epochs,
        verbose=verbose,
        random_state=random_state,
    )
    occupation = data.X_test["occupation"].to_numpy()
    y = data.y_test.to_numpy()
    seen = ~np.isin(occupation, data.unseen_tasks)
    groups = {"seen occupations": seen}
    groups.update((t, occupation == t) for t in data.unseen_tasks)
    results, lines, table = {}, [], []
    models = {
        "AutoTaskClassifier": AutoTaskClassifier(**training),
        "MultiTaskDNNClassifier (general)": MultiTaskDNNClassifier(
            branch="general", **training
        ),
    }
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(X_train, y_train)
        seconds = time.perf_counter() - start
        proba = model.predict_proba(data.X_test)[:, 1]
        results[name] = {
            group: roc_auc_score(y[rows], proba[rows]) for group, rows in groups.items()
        }
        cells = " ".join(f"{results[name][g]:>17.4f}" for g in groups)
        lines.append(f"{name:<36} {cells} {seconds:>8.1f}")
        table.append(
            [name, *(f"{results[name][g]:.4f}" for g in groups), f"{seconds:.1f}"]
        )
    print("\nHeld-out ROC AUC (rows of all seen occupations pooled; each unseen one)")
    print(f"{'model':<36} " + " ".join(f"{g:>17}" for g in groups) + "  fit (s)")
    print("\n".join(lines))
    if report is not None:
        header = [g if g == "seen occupations" else f"{g} (unseen)" for g in groups]
        report.heading("UCI Adult by occupation (AutoTask paper's setting)")
        report.paragraph(
            intro + " Cells: held-out ROC AUC, the rows of all seen occupations "
            "pooled, then each unseen occupation."
        )
        report.table(("model", *header, "fit (s)"), table)
        bars = {
            name: dict(zip(header, scores.values())) for name, scores in results.items()
        }
        report.figure(
            "scenarios_auc.png",
            "Held-out ROC AUC of AutoTask and the multi-task DNN's general branch, "
            "seen occupations pooled and each unseen occupation.",
            lambda fig: draw_grouped_bars(
                fig, bars, "ROC AUC", "Adult by occupation: seen vs unseen tasks"
            ),
        )
    return results


def galleries(
    max_epochs: int,
    verbose: int,
    random_state: int,
    report: Report | None = None,
    n_galleries: tuple[int, int] = (400, 200),
) -> dict:
    """GalleryEmbedder on galleries of MNIST digits; a linear probe on its
    embeddings predicts a task it was never trained on."""
    from sklearn.frozen import FrozenEstimator

    from . import GalleryEmbedder
    from .datasets import make_digit_galleries

    n_train, n_test = n_galleries
    train = make_digit_galleries(
        n_train, subset="train", missing_rate=0.1, random_state=random_state
    )
    test = make_digit_galleries(n_test, subset="test", random_state=random_state + 1)
    intro = (
        f"Galleries of 5-20 MNIST digits (28x28): {len(train.galleries)} train, "
        f"{len(test.galleries)} test; tasks {list(train.target.columns)}; "
        "hold-out task mostly_even (never trained on)."
    )
    print("\n" + intro)
    epochs = _gallery_epochs(max_epochs)
    embedder = GalleryEmbedder(
        backbone="small_vgg",
        image_size=28,
        lr=1e-3,
        batch_size=16,
        max_epochs=epochs,
        verbose=verbose,
        random_state=random_state,
    )
    start = time.perf_counter()
    embedder.fit(train.galleries, train.target)
    seconds = time.perf_counter() - start
    probe = make_pipeline(
        FrozenEstimator(embedder), StandardScaler(), LogisticRegression(max_iter=2000)
    ).fit(train.galleries, train.holdout)
    # The test embeddings once: for the probe's score and the report's map.
    embedded_test = embedder.transform(test.galleries)
    accuracy = probe[1:].score(embedded_test, test.holdout)

    def mean_image(batch):
        return np.stack([g.reshape(len(g), -1).mean(axis=0) for g in batch])

    pixels = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    pixels.fit(mean_image(train.galleries), train.holdout)
    baseline = pixels.score(mean_image(test.galleries), test.holdout)
    majority = max(test.holdout.mean(), 1 - test.holdout.mean())
    rows = {
        "linear probe on GalleryEmbedder embeddings": accuracy,
        "linear probe on the mean image of each gallery": baseline,
        "majority class": majority,
    }
    print("\nHold-out task accuracy on test galleries")
    for label, value in rows.items():
        print(f"{label:<52} {value:.4f}")
    print(f"(GalleryEmbedder fit: {seconds:.1f} s)")
    if report is not None:
        report.heading("MNIST digit galleries (gallery paper's setting)")
        report.paragraph(
            intro + f" GalleryEmbedder (small_vgg, {epochs} epochs) fit in "
            f"{seconds:.1f} s. Cells: accuracy on the hold-out task."
        )
        report.table(
            ("model", "mostly_even accuracy"),
            [[label, f"{value:.4f}"] for label, value in rows.items()],
        )
        report.figure(
            "gallery_probe.png",
            "Hold-out task (mostly even digits) accuracy on the test galleries.",
            lambda fig: draw_bars(
                fig,
                {
                    "probe on\nGalleryEmbedder": accuracy,
                    "probe on\nmean image": baseline,
                    "majority\nclass": majority,
                },
                "accuracy",
                "Hold-out task: mostly even digits",
            ),
            size=(6.0, 4.5),
        )
        report.figure(
            "gallery_embeddings.png",
            "The test galleries' GalleryEmbedder embeddings in 2-D (PCA), coloured "
            "by the hold-out task and by a trained task (the mean digit).",
            lambda fig: draw_embedding_map(
                fig,
                embedded_test,
                {
                    "mostly_even (hold-out task)": test.holdout.to_numpy(),
                    "mean_digit (trained task)": test.target["mean_digit"].to_numpy(),
                },
                random_state=random_state,
            ),
            size=(11.0, 4.5),
        )
    return {
        "GalleryEmbedder probe": {"mostly_even_accuracy": accuracy},
        "mean-image probe": {"mostly_even_accuracy": baseline},
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="mtlestimators demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="5 epochs instead of 10")
    parser.add_argument("--verbose", type=int, default=1, help="0 hides epoch tables")
    parser.add_argument(
        "--report",
        default=DEFAULT_REPORT,
        metavar="DIR",
        help="folder for report.md, report.html and the PNG figures "
        f"(default: {DEFAULT_REPORT})",
    )
    parser.add_argument(
        "--no-report", action="store_true", help="print the scores only"
    )
    # Tests: 1 epoch, 1,000 training rows, 40/20 galleries.
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    np.set_printoptions(precision=4)
    size = {}
    if args.smoke:
        size = dict(max_epochs=1, max_train_rows=1000, n_galleries=(40, 20))
    run(
        **{"max_epochs": 5 if args.quick else 10, **size},
        verbose=args.verbose,
        report=None if args.no_report else args.report,
    )


if __name__ == "__main__":
    main()
