# Worker image: `docker build -t audience-webhooks .` (used by docker-compose.yml and k8s/).
FROM python:3.11-slim
WORKDIR /srv
COPY pyproject.toml README.md ./
COPY app ./app
COPY topics ./topics
RUN pip install --no-cache-dir . && useradd --uid 10001 webhooks && mkdir -p /var/lib/webhooks \
    && chown webhooks /var/lib/webhooks
USER webhooks
ENV WEBHOOKS_DATA_DIR=/var/lib/webhooks
ENTRYPOINT ["webhooks"]
CMD ["worker"]
