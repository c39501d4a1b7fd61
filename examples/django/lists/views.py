import time
from html import escape

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from lists.models import Item, List


def commit():
    # REVISION is at the release's root: the app's folder, or above it
    # when the app lives in a sub-folder.
    for folder in (settings.BASE_DIR, settings.BASE_DIR.parent):
        try:
            return (folder / "REVISION").read_text().strip()
        except OSError:
            pass
    return "unknown"


def release_header(get_response):
    """Names the commit that answered in every response (`X-Release`)."""

    def middleware(request):
        response = get_response(request)
        response["X-Release"] = commit()
        return response

    return middleware


def slow(request):
    """Answers after `s` seconds (at most 30): a request in flight."""
    time.sleep(min(float(request.GET.get("s", "1")), 30))
    return HttpResponse(f"slow {commit()}\n", content_type="text/plain")


def health(request):
    return HttpResponse(f"ok {commit()}\n", content_type="text/plain")


def home(request):
    items = "".join(f"<li>{escape(i.text)}</li>" for i in Item.objects.order_by("id"))
    return HttpResponse(
        f"<!doctype html><title>To-Do</title><link rel=stylesheet href=/static/lists/style.css><p id=commit>commit {commit()}</p><ul id=items>{items}</ul>\n"
    )


@csrf_exempt
def add_item(request):
    if request.method != "POST":
        return HttpResponse("POST only\n", status=405)
    todo, _ = List.objects.get_or_create(id=1)
    Item.objects.create(list=todo, text=request.POST.get("text", ""))
    return HttpResponse("added\n", status=201)
