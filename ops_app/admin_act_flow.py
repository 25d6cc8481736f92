"""The admin's side of the act flow, one plumbing for every operated model: acts offered as bulk
actions on the list and as a panel on the object's page, both confirming with each object's plan
before anything runs, both refusing a posted act the user may not run, both running through
ops_app.acts.act_run (which audits)."""

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from ops_app.acts import Act, ActRefused, Plan, act_run
from ops_app.models import AuditVia
from webhooks_app.services.operations import Actor

# A bulk act lists every object on its confirmation page; more than this is a filter that
# should be narrowed first.
MAX_BULK_OBJECTS = 200


class ActAdminMixin(admin.ModelAdmin[Any]):
    """Set `acts` (name -> Act) and `act_confirmation_template`; the rest is here."""

    acts: dict[str, Act] = {}
    act_confirmation_template = ""
    # How the bulk confirmation orders the selected objects.
    act_ordering: tuple[str, ...] = ("-pk",)

    def may_act(self, request: HttpRequest, act: Act) -> bool:
        return request.user.has_perm(act.permission)

    def act_params(self, request: HttpRequest, act: Act, target: Any) -> dict[str, Any]:
        """The act's own input from the confirmation form (a reset's step), passed to act_run.
        Raises ValueError, shown on the confirmation page, when the input is missing or wrong."""
        return {}

    # --- bulk, from the list

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        for name, act in self.acts.items():
            if self.may_act(request, act):
                actions[name] = (self._bulk_action(act), name, f"{act.title}…")
        return actions

    def _bulk_action(self, act: Act) -> Any:
        def run(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
            return self.act_bulk(request, queryset, act)

        return run

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # Django drops an action the user may not run and answers 200 "no action selected";
        # a posted act without its permission is refused outright instead.
        if request.method == "POST":
            for name in request.POST.getlist("action"):
                if name in self.acts and not self.may_act(request, self.acts[name]):
                    raise PermissionDenied
        return super().changelist_view(request, extra_context)

    def act_bulk(self, request: HttpRequest, queryset: QuerySet[Any], act: Act) -> HttpResponse | None:
        targets = list(queryset.order_by(*self.act_ordering)[: MAX_BULK_OBJECTS + 1])
        if len(targets) > MAX_BULK_OBJECTS:
            plural = self.opts.verbose_name_plural
            self.message_user(
                request, f"Select at most {MAX_BULK_OBJECTS} {plural} at once; narrow the filter first.", messages.ERROR
            )
            return None
        plans = act.plan_many(targets)
        note = request.POST.get("note", "").strip()
        error = ""
        if request.POST.get("confirm") == "yes":
            if act.needs_note and not note:
                error = f"A note is required: say why you {act.verb} these {self.opts.verbose_name_plural}."
            else:
                self._run_plans(request, act, [p for p in plans if p.applies], note)
                return None
        return self.act_confirmation(request, act, plans, note=note, error=error, bulk=True)

    def _run_plans(self, request: HttpRequest, act: Act, plans: list[Plan], note: str) -> None:
        actor = Actor.from_user(request.user, via=AuditVia.ADMIN)
        done, refused = 0, []
        for plan in plans:
            try:
                act_run(act=act, target=plan.target, actor=actor, note=note)
            except ActRefused as exc:  # the object changed since the confirmation page
                refused.append(f"{plan.target}: {exc}")
            else:
                done += 1
        plural = self.opts.verbose_name_plural
        if done:
            self.message_user(request, f"{act.title}: done for {done} of the {plural}.", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not done: " + "; ".join(refused), messages.WARNING)
        if not done and not refused:
            self.message_user(request, f"{act.title}: none of the selected {plural} applies.", messages.WARNING)

    def act_confirmation(
        self, request: HttpRequest, act: Act, plans: list[Plan], *, note: str, error: str, bulk: bool
    ) -> TemplateResponse:
        applies = [p for p in plans if p.applies]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{act.title}?",
            "act": act,
            "plans": plans,
            "applies_count": len(applies),
            "open_items_count": sum(len(p.open_items) for p in applies),
            "kept_items_count": sum(p.kept_items for p in applies),
            "note": note,
            "error": error,
            "bulk": bulk,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "back_url": request.get_full_path() if bulk else self._change_url(plans[0].target),
        }
        return TemplateResponse(request, self.act_confirmation_template, context)

    # --- on one object, from its page

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.act_view)
        name = f"{self.opts.app_label}_{self.opts.model_name}_act"
        return [path("<path:object_id>/act/<str:act_name>/", view, name=name), *super().get_urls()]

    def act_view(self, request: HttpRequest, object_id: str, act_name: str) -> HttpResponse:
        act = self.acts.get(act_name)
        if act is None:
            raise Http404("no such act")
        if not self.may_act(request, act):
            raise PermissionDenied
        target = self.get_object(request, unquote(object_id))
        if target is None or not self.has_view_permission(request, target):
            raise Http404(f"no such {self.opts.verbose_name}")
        note = request.POST.get("note", "").strip()
        error = ""
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            params: dict[str, Any] = {}
            try:
                params = self.act_params(request, act, target)
            except ValueError as exc:
                error = str(exc)
            if not error and act.needs_note and not note:
                error = f"A note is required: say why you {act.verb} this {self.opts.verbose_name}."
            if not error:
                actor = Actor.from_user(request.user, via=AuditVia.ADMIN)
                try:
                    act_run(act=act, target=target, actor=actor, note=note, **params)
                except ActRefused as exc:
                    self.message_user(request, f"{act.title}: {exc}", messages.ERROR)
                else:
                    self.message_user(request, self.act_done_message(act, target), messages.SUCCESS)
                return HttpResponseRedirect(self._change_url(target))
        return self.act_confirmation(request, act, act.plan_many([target]), note=note, error=error, bulk=False)

    def act_done_message(self, act: Act, target: Any) -> str:
        return f"{act.title}: done."

    def act_panel_context(self, request: HttpRequest, target: Any) -> dict[str, Any]:
        """Each act's plan for the object's page, and whether the user may run it."""
        return {
            "act_plans": {name: act.plan(target) for name, act in self.acts.items()},
            "may_act": {name: self.may_act(request, act) for name, act in self.acts.items()},
        }

    def _change_url(self, target: Model) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[target.pk])
