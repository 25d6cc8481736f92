"""A call ended (Retell call_ended / call_analyzed, Vapi end-of-call-report): track the call,
analyse it once, and run its disposition's actions as the event's items."""

from webhooks_app.handlers import HandlerResult, register
from webhooks_app.models import EventAction, SourceKind, WebhookEvent
from workflows_app.call_reports import retell_report, vapi_report
from workflows_app.services.calls import call_analyse, call_record
from workflows_app.services.dispositions import call_route


def _handle(event: WebhookEvent, report_kind: str) -> HandlerResult:
    report = retell_report(event.payload) if report_kind == SourceKind.RETELL else vapi_report(event.payload)
    call = call_record(event=event, report=report)
    call = call_analyse(call=call, event=event)
    items = call_route(call=call, event=event)
    if not items:
        # Recorded and analysed; the actions were another event's to run, or there are none.
        return HandlerResult(action_without_items=EventAction.IGNORED)
    return HandlerResult(items=items)


@register(SourceKind.RETELL, "call_ended")
@register(SourceKind.RETELL, "call_analyzed")
def retell_call_event(event: WebhookEvent) -> HandlerResult:
    return _handle(event, SourceKind.RETELL)


@register(SourceKind.VAPI, "end-of-call-report")
def vapi_end_of_call_report(event: WebhookEvent) -> HandlerResult:
    return _handle(event, SourceKind.VAPI)
