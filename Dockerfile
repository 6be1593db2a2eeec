# Image of the worker and the API (`webhooks worker`, `webhooks api`): `docker build -t audience-webhooks .`
# (used by docker-compose.yml and k8s/).
# Dependencies first, from a lock file with a hash for every transitive package
# (`uv pip compile pyproject.toml --generate-hashes -o requirements.lock`), so a code change
# rebuilds only the last layers. Test and demo code stays out (.dockerignore: tests, bench,
# scripts, app/devtools).
FROM python:3.11-slim
WORKDIR /srv
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY app ./app
COPY topics ./topics
RUN pip install --no-cache-dir --no-deps . && useradd --uid 10001 webhooks \
    && mkdir -p /var/lib/webhooks && chown webhooks /var/lib/webhooks
USER webhooks
ENV WEBHOOKS_DATA_DIR=/var/lib/webhooks WEBHOOKS_HTTP_PORT=8080 PYTHONDONTWRITEBYTECODE=1
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["webhooks"]
CMD ["worker"]
