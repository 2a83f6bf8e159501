"""Figures logged to MLflow: sample inputs, a confusion matrix, the client label mix, comparisons, federated rounds,
learning curves, and the comparison stage's scatter plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402


def sample_grid(X: np.ndarray, y: np.ndarray, classes: np.ndarray, per_class: int = 8) -> Figure:
    """A row of example inputs per class: images as images, 1-D examples (signals, table rows) as lines, whose
    sign and shape a grey strip would hide."""
    fig, axes = plt.subplots(len(classes), per_class, figsize=(per_class * 0.9, len(classes) * 0.9), squeeze=False)
    for row in range(len(classes)):
        members = np.nonzero(y == row)[0][:per_class]
        for col in range(per_class):
            ax = axes[row, col]
            ax.axis("off")
            if col < len(members) and X.ndim == 2:
                ax.plot(X[members[col]], linewidth=0.6)
            elif col < len(members):
                ax.imshow(as_image(X[members[col]]), cmap="gray")
        axes[row, 0].set_title(str(classes[row]), fontsize=7, loc="left")
    fig.tight_layout()
    return fig


def as_image(x: np.ndarray) -> np.ndarray:
    """One example as a 2-D grey image (or H×W×3): images as they are, a tabular row as a one-pixel strip,
    a C×L signal as C strips."""
    if x.ndim <= 2:  # a row (D,), a signal (C, L) or a grey image (H, W)
        return np.atleast_2d(x)
    if x.shape[0] in (1, 3):  # C×H×W
        return x[0] if x.shape[0] == 1 else np.clip(np.moveaxis(x, 0, -1), 0, 1)
    return x[0]


def confusion_figure(matrix: np.ndarray, classes: np.ndarray, title: str) -> Figure:
    size = max(4.0, 0.45 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), [str(c) for c in classes])
    ax.set_yticks(range(len(classes)), [str(c) for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            str(count),
            ha="center",
            va="center",
            fontsize=7,
            color="white" if count > matrix.max() / 2 else "black",
        )
    fig.tight_layout()
    return fig


def client_label_figure(counts: np.ndarray, classes: np.ndarray, title: str) -> Figure:
    """Stacked bars: how many examples of each class (columns of ``counts``) every client (rows) holds."""
    num_clients = len(counts)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.35 * num_clients + 2), 3.5))
    bottom = np.zeros(num_clients)
    colors = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for label in range(len(classes)):
        ax.bar(
            range(num_clients),
            counts[:, label],
            bottom=bottom,
            color=colors(label % colors.N),
            label=str(classes[label]),
        )
        bottom += counts[:, label]
    ax.set_xlabel("client")
    ax.set_ylabel("examples")
    ax.set_title(title)
    ax.legend(title="class", fontsize=6, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


def close(fig: Figure) -> None:
    plt.close(fig)


def multitask_comparison_figure(
    tasks: list[str], shared_acc: list[float], separate_acc: list[float], ratios: dict[str, float]
) -> Figure:
    """Left: test accuracy per task, multi-task against separate models. Right: multi-task cost / separate cost."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    where = np.arange(len(tasks))
    left.bar(where - 0.2, shared_acc, width=0.4, label="multitask")
    left.bar(where + 0.2, separate_acc, width=0.4, label="separate")
    left.set_xticks(where, tasks)
    left.set_ylabel("test accuracy")
    left.set_ylim(min(shared_acc + separate_acc) * 0.9, 1.0)
    left.legend(fontsize=7)
    names = list(ratios)
    right.barh(range(len(names)), [ratios[n] for n in names])
    right.axvline(1.0, color="black", linewidth=0.8)
    right.set_yticks(range(len(names)), names, fontsize=7)
    right.set_xlabel("multitask / sum of separate models (1 = equal)")
    fig.tight_layout()
    return fig


def federated_rounds_figure(
    rounds: list[int], test_acc: list[float], megabytes: list[float], centralized_acc: float | None, title: str
) -> Figure:
    """Left: global test accuracy per round (centralised baseline dashed). Right: megabytes communicated so far."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(rounds, test_acc, marker=".", label="federated (global model)")
    if centralized_acc is not None:
        left.axhline(centralized_acc, color="black", linestyle="--", linewidth=0.8, label="centralised")
    left.set_xlabel("round")
    left.set_ylabel("test accuracy")
    left.legend(fontsize=7)
    right.plot(rounds, megabytes, marker=".")
    right.set_xlabel("round")
    right.set_ylabel("MB communicated (down + up, cumulative)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def personalization_figure(clients: list[int], before: list[float], after: list[float], title: str) -> Figure:
    """Per client: accuracy on its own label mix with the global model and after local fine-tuning."""
    fig, ax = plt.subplots(figsize=(max(5.0, 0.35 * len(clients) + 2), 3.5))
    where = np.arange(len(clients))
    ax.bar(where - 0.2, before, width=0.4, label="global model")
    ax.bar(where + 0.2, after, width=0.4, label="personalised")
    ax.set_xticks(where, [str(c) for c in clients], fontsize=7)
    ax.set_xlabel("client")
    ax.set_ylabel("accuracy on the client's label mix")
    ax.set_ylim(min(before + after) * 0.9, 1.0)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def curves_figure(
    curves: dict[str, tuple[list[float], list[float]]],
    xlabel: str,
    title: str,
    control: str | None = None,
    reference: tuple[str, float] | None = None,
) -> Figure:
    """Test accuracy against ``xlabel``, one line per name (``control`` dashed black), a ``reference`` level dotted."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, (x, acc) in curves.items():
        style = {"color": "black", "linestyle": "--"} if name == control else {}
        ax.plot(x, acc, marker=".", label=name, **style)
    if reference is not None:
        ax.axhline(reference[1], color="grey", linestyle=":", linewidth=0.8, label=f"{reference[0]} {reference[1]:.3f}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def points_by_group_figure(
    points: dict[str, tuple[list[float], list[float]]],
    xlabel: str,
    ylabel: str,
    title: str,
    diagonal_band: float | None = None,
) -> Figure:
    """One colour per group, logarithmic x. ``diagonal_band``: log-log, with y = x and the ±band around it."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for group, (x, y) in points.items():
        ax.scatter(x, y, label=group, s=24)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # unlabelled minor ticks: their labels overlap
    if diagonal_band is not None:
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(NullFormatter())
        every = [v for x, y in points.values() for v in (*x, *y) if v > 0]
        line = np.geomspace(min(every) * 0.8, max(every) * 1.25, 50)
        ax.plot(line, line, color="black", linewidth=0.8, label="equal")
        ax.fill_between(
            line,
            line * (1 - diagonal_band),
            line * (1 + diagonal_band),
            color="grey",
            alpha=0.2,
            label=f"within {diagonal_band:.0%}",
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def pareto_figure(
    panels: dict[str, dict[str, tuple[list[float], list[float], list[bool]]]], ylabel: str, title: str
) -> Figure:
    """Panels side by side, one per x label (a cost, logarithmic), each mapping a group to its points' x, y and
    whether each is on the group's Pareto front (lower x, higher y). One colour per group in every panel; front
    points ringed and joined by a step line: the best y a budget of x buys."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    groups = list(dict.fromkeys(group for points in panels.values() for group in points))
    colors = plt.get_cmap("tab10")
    for ax, (xlabel, points) in zip(axes[0], panels.items()):
        for group, (x, y, front) in points.items():
            color = colors(groups.index(group) % colors.N)
            ax.scatter(x, y, color=color, s=24, label=group)
            best = sorted((xi, yi) for xi, yi, on in zip(x, y, front) if on)
            if best:
                fx, fy = zip(*best)
                ax.scatter(fx, fy, facecolors="none", edgecolors=color, s=90, linewidths=1.2)
                ax.step(fx, fy, where="post", color=color, linewidth=0.9, alpha=0.8)
        ax.set_xscale("log")  # minor ticks keep their labels: a latency range is often under one decade
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7, title="ringed: on its front", title_fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
