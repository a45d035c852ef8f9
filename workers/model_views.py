"""Model promotion pages (pathologists and admins): candidates, their held-out comparison with the
current default, and the promote action with a reason. Thin: logic in analysis.promotion."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from analysis import promotion
from analysis.models import ModelVersion
from cases.choices import Role
from cases.views import role_required

reviewers = role_required(Role.ADMIN, Role.PATHOLOGIST)


@reviewers
def model_list(request):
    return render(request, "workers/model_list.html", {
        "candidates": promotion.candidates(), "default": promotion.Baseline.current(),
        "clinical": ModelVersion.objects.filter(status="clinical").order_by("name")})


@reviewers
def model_review(request, pk):
    candidate = get_object_or_404(ModelVersion, pk=pk)
    try:
        marker = promotion.evaluation_marker(candidate)
    except promotion.PromotionError as exc:  # of unknown marker: shown, never evaluated or promoted
        marker = None
        messages.error(request, str(exc))
    evaluation = promotion.current_evaluation(candidate) if marker else None
    return render(request, "workers/model_review.html", {
        "candidate": candidate, "default": promotion.Baseline.current(marker or promotion.BASELINE_MARKER),
        "evaluation": evaluation,
        "rows": promotion.comparison_rows(evaluation) if evaluation else [],
        "source_metrics": [label for label, _, _ in promotion.SOURCE_METRICS],
        "source_rows": promotion.source_rows(evaluation) if evaluation else [],
        "held_out": candidate.held_out_sources(), "lineage": promotion.lineage_text(candidate),
        "promotions": candidate.promotions.all()})


@require_POST
@reviewers
def model_evaluate(request, pk):
    candidate = get_object_or_404(ModelVersion, pk=pk)
    try:
        evaluation = promotion.do_evaluate(candidate, request.user)
    except promotion.PromotionError as exc:
        messages.error(request, f"Not evaluated: {exc}")
    else:
        messages.success(request, f"{candidate.name} and {evaluation.baseline} scored on {evaluation.fields} "
                                  "held-out field(s).")
    return redirect("workers:model-review", pk=candidate.pk)


@require_POST
@reviewers
def model_promote(request, pk):
    candidate = get_object_or_404(ModelVersion, pk=pk)
    try:
        promotion.do_promote(candidate, request.user, request.POST.get("reason", ""))
    except (promotion.PromotionError, ValueError) as exc:
        messages.error(request, f"Not promoted: {exc}")
    else:
        messages.success(request, f"{candidate.name} is released for clinical use.")
    return redirect("workers:model-review", pk=candidate.pk)
