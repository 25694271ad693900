"""The WSGI application every server runs (gunicorn ``paymenter.wsgi:application``):
Django behind the refusal gate (``paymenter.refusal_gate``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paymenter.settings")

from paymenter.refusal_gate import RefusalGate

application = RefusalGate(get_wsgi_application())
