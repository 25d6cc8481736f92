"""The act flow, one for the admin, the API and replays: plan (what will happen to each object,
or why not) -> confirm -> run -> one audit entry. An act's state change is its service's; the
flow runs it and writes the audit in the same transaction, so neither exists without the other."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.db import models, transaction

from ops_app.models import AuditAct, AuditEntry
from webhooks_app.services.operations import Actor


class ActRefused(Exception):
    """The act does not apply to the object in its current state. Safe to show."""


class Change(Protocol):
    @property
    def status_before(self) -> str: ...

    @property
    def status_after(self) -> str: ...


@dataclass(frozen=True)
class Plan:
    """What one act will do to one object, shown before it is done."""

    target: Any
    applies: bool
    reason: str = ""
    # Acts on events: items not (yet) succeeded, re-run by a retry, left as they are by a
    # resolution; and how many succeeded items are kept.
    open_items: tuple[Any, ...] = field(default=())
    kept_items: int = 0


@dataclass(frozen=True)
class Act:
    name: AuditAct
    title: str
    button: str
    verb: str
    # "<app_label>.<codename>", checked by every door (admin and API).
    permission: str
    model: type[models.Model]
    needs_note: bool
    # Plans for several objects at once, so a bulk confirmation reads their details in one query.
    plan_many: Callable[[Sequence[Any]], list[Plan]]
    # Changes the state; never audits. It raises ActRefused, or `refused_by`, the service's own
    # "does not apply" error, which act_run turns into ActRefused with the same message.
    run: Callable[..., Change]
    refused_by: type[Exception] = ActRefused

    def plan(self, target: Any) -> Plan:
        return self.plan_many([target])[0]


def act_run(*, act: Act, target: models.Model, actor: Actor, note: str = "", **params: Any) -> AuditEntry:
    """Run `act` on `target` for `actor` and audit it. Raises ActRefused, changing nothing, when
    the act does not apply (any more) or a required note is missing. `params` are the act's own
    input (a reset's step position, recover-since's time), passed on to its run."""
    note = note.strip()
    if act.needs_note and not note:
        raise ActRefused(f"a note is required to {act.verb}")
    if "\x00" in note:  # PostgreSQL stores no NUL in text: refused here, not as a database error
        raise ActRefused("a note cannot contain NUL characters")
    user = actor.user if actor.user is not None and actor.user.is_authenticated else None
    with transaction.atomic():
        try:
            change = act.run(target_id=target.pk, actor=actor, note=note, **params)
        except act.refused_by as exc:
            raise ActRefused(str(exc)) from exc
        return AuditEntry.objects.record(
            target=target,
            actor_id=user.pk if user is not None else None,
            actor_label=actor.label[:200],
            via=actor.via,
            act=act.name,
            note=note,
            status_before=change.status_before,
            status_after=change.status_after,
        )
