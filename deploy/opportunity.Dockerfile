# The opportunity service image: the uv workspace installed from uv.lock, run as a non-root user.
FROM python:3.11-slim AS build
RUN pip install --no-cache-dir uv==0.13.8
WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY contracts contracts
COPY services services
COPY src src
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim
RUN useradd --system --uid 10001 oppstream
COPY --from=build /app/.venv /app/.venv
USER oppstream
WORKDIR /home/oppstream
ENV PATH=/app/.venv/bin:$PATH
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
ENTRYPOINT ["oppstream", "serve", "opportunity", "--host", "0.0.0.0", "--port", "8000"]
