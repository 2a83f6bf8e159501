"""The report's section on distillation: the distilled student against the same student on hard labels alone,
and both against their teacher's accuracy, size and latency."""

from __future__ import annotations

from pipeline.reporting.headline import champion, headline_seeds, rank, standing_phrase, verdict_words
from pipeline.reporting.results import Results
from pipeline.reporting.sections import Section, before_link, col, epochs, flag_sanity, pick, variant
from pipeline.reporting.significance import compare
from pipeline.reporting.table import cell, markdown_table

TITLE = "Distillation: student from the teacher vs student from labels alone (full task)"
QUESTION = "distill"
STUDENTS = ("student", "distilled")
ORDER = ("teacher", *STUDENTS)


def compare_students(results: Results) -> Section:
    rows = results.of("distill")
    rows = rows.iloc[sorted(range(len(rows)), key=lambda i: ORDER.index(rows.iloc[i]["variant"]))]
    if rows.empty:
        return Section(TITLE, "No distill runs.", "")
    by = {row["variant"]: row for _, row in rows.iterrows()}
    text = (
        "The teacher is the configured `model` trained on the full task's training labels; `student` is a smaller "
        "network (`distill.student`) trained on hard labels alone, the control; `distilled` is the same network from "
        "the same initial weights and with the same labels and epoch budget, trained on Hinton et al.'s loss: "
        "`alpha · T² · KL(teacher_T ‖ student_T) + (1 − alpha) · CE(labels)`. Ratios are the student's over the "
        "teacher's; `agrees with teacher`: the share of test examples on which the two predict the same class. "
        "Latency is batch 1 on the run's device (see the deployment section)."
    )
    columns = pick("run", "seeds", "test acc", "labels used", "total params", "MLflow")
    columns = before_link(columns, "size on disk", col("model/size_bytes", "bytes"))
    columns = before_link(columns, "latency p50 ms", col("deploy/latency_ms_p50", "ms"))
    columns = before_link(columns, "size / teacher", col("distill/size_ratio", "pct"))
    columns = before_link(columns, "latency / teacher", col("distill/latency_ratio", "pct"))
    columns = before_link(columns, "agrees with teacher", col("distill/agreement", "pct"))
    columns = before_link(columns, "epochs", epochs(results, rows))
    columns["run"] = variant
    table = markdown_table((r for _, r in rows.iterrows()), columns)
    students = rows[rows.variant.isin(STUDENTS)]
    if len(students) < 2:
        return flag_sanity(Section(TITLE, text, table, f"{TITLE}: needs both students to compare."), rows)
    verdict = compare(results.scores(by["distilled"]), results.scores(by["student"]))
    gap = by["distilled"]["test/acc"] - by["student"]["test/acc"]
    found = rank(results, students)
    phrase = standing_phrase(found, students, lambda row: cell(row, "test/acc"), lambda row: row["variant"])
    headline = (
        f"Distillation: the distilled student is {verdict_words(verdict, 'the student on labels alone')}, "
        f"{gap:+.3f} ({headline_seeds(students)})"
    )
    if "teacher" in by:
        times = 1 / by["distilled"]["distill/size_ratio"]
        headline += f"; the teacher: {cell(by['teacher'], 'test/acc')} at {times:.1f}× the size"
    section = Section(
        TITLE,
        text,
        table,
        headline + ".",
        metrics={"distill/acc_gain_vs_student": gap},
        champion=champion(results, students, found, QUESTION, TITLE, phrase),
    )
    return flag_sanity(section, rows)
