# syntax=docker/dockerfile:1
# Production image: one image for web (gunicorn), the Celery worker, Celery beat and the
# one-shot migration job (see docker-compose.yml). Development does not use it (`make run`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PAYMENTER_ENV=production

WORKDIR /app

RUN groupadd --system --gid 10001 paymenter \
 && useradd --system --uid 10001 --gid paymenter --home-dir /app --shell /usr/sbin/nologin paymenter

# WeasyPrint's system libraries (PDF tax invoices, receipts and credit notes,
# portal/documents.py): Pango with HarfBuzz for text, and the one font the print stylesheet
# names (paymenter/static/documents/print.css).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*

# Dependencies first (cached while only the code changes), pinned by the same constraints
# file `make run` / `make test` use. Runtime dependencies only: no dev extra, so no embedded
# PostgreSQL/Redis wheels. psycopg[binary] brings its own libpq.
COPY pyproject.toml ./
COPY requirements/constraints.txt requirements/constraints.txt
RUN pip install -c requirements/constraints.txt . \
 && rm -rf build *.egg-info

COPY . .

# Static files for the admin, collected at build time. Settings need no secrets for this in
# development mode; the running container is production and refuses to start without them.
RUN PAYMENTER_ENV=development python manage.py collectstatic --noinput --verbosity 0 \
 && chown -R paymenter:paymenter /app/staticfiles

USER paymenter
EXPOSE 8000

# gunicorn reads /app/gunicorn.conf.py: sync workers (WEB_CONCURRENCY of them), access log on
# stdout through the logger class that redacts card numbers (docs/operations.md). Tune with
# WEB_CONCURRENCY or GUNICORN_CMD_ARGS (read by gunicorn itself), e.g. "--timeout 30".
CMD ["gunicorn", "paymenter.wsgi:application", "--bind", "0.0.0.0:8000"]
